"""The create form: every bad input of SPEC gets the service's message next to its field, and nothing is saved."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from clusters.models import Project
from tasks.models import Task, TaskMount
from tasks.services import task_create
from tasks.states import Status
from tests.factories import (
    ProjectFactory,
    StorageFactory,
    TaskFactory,
    VirtualClusterFactory,
    task_data,
)

from .conftest import form_data

CREATE = reverse("portal:task-create")


def _errors(response, field):
    """The messages shown next to ``field``."""
    form = response.context["form"]
    return " ".join(str(e) for e in form.errors.get(field, []))


@pytest.mark.django_db
@pytest.mark.usefixtures("anyone_sets_commands")
def test_a_valid_form_creates_the_task_and_opens_it(member_client, world):
    response = member_client.post(
        CREATE, form_data(world, command="python -m demo_model", args="--port 8000 --name 'a b'"),
    )
    task = Task.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("portal:task-detail", args=[task.pk])
    assert task.status == Status.NOT_DEPLOYED and task.owner == world.member
    assert task.env == [{"name": "SHM_SIZE", "value": "60G"}]
    assert task.command == ["python", "-m", "demo_model"] and task.args == ["--port", "8000", "--name", "a b"]
    assert [(m.storage, m.mount_path) for m in task.mounts.all()] == [(world.storage, "/models")]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "  "}, "name", "A name is required"),
        ({"name": "x" * 101}, "name", "The name must be at most 100 characters"),
        ({"image": "docker.io/library/nginx:1"}, "image", "Images must come from an allowed registry: registry.example.com"),
        ({"image": "nginx:latest"}, "image", "allowed registry"),
        ({"image": "registry.example.com/Bad Image"}, "image", "is not a valid image reference"),
        ({"sku_count": "0"}, "sku_count", "The SKU count must be at least 1"),
        ({"sku_count": "9"}, "sku_count", "can never fit: needs 9 SKUs on one machine, but the largest machine offers 8"),
        ({"sku_count": "8", "replicas": "3"}, "sku_count", "even empty the machines could host only 2"),
        ({"sku_count": "two"}, "sku_count", "Enter a whole number"),
        ({"replicas": "0"}, "replicas", "Replicas must be between 1 and"),
        ({"replicas": "17"}, "replicas", "Replicas must be between 1 and 16"),
        ({"container_port": "70000"}, "container_port", "Ports must be between 1 and 65535"),
        ({"container_port": ""}, "container_port", "A container port is required"),
        ({"external_port": "80"}, "external_port", "Ports must be between"),
        ({"env-0-name": "1BAD"}, "env", "“1BAD” is not a valid environment variable name"),
        ({"env-1-name": "SHM_SIZE", "env-1-value": "1G"}, "env", "SHM_SIZE is given more than once"),
        ({"env-0-value": "sixty"}, "env", "SHM_SIZE must be a number with a unit"),
        ({"env-0-value": "900G"}, "env", "larger than the instance's memory"),
        ({"mounts-{storage}-path": "models"}, "mounts", "must be absolute"),
        ({"mounts-{storage}-path": "/models/../etc"}, "mounts", "must not contain “..”"),
        ({"mounts-{storage}-path": "/dev/shm"}, "mounts", "would shadow a system path"),
        ({"mounts-{storage}-path": "/"}, "mounts", "would shadow a system path"),
        ({"command": "python -c 'unbalanced"}, "command", "not a valid command line"),
    ],
)
def test_each_bad_input_is_shown_next_to_its_field_and_nothing_is_saved(member_client, world, overrides, field, message):
    overrides = {key.format(storage=world.storage.pk): value for key, value in overrides.items()}
    response = member_client.post(CREATE, form_data(world, **overrides))
    assert response.status_code == 200
    assert message in _errors(response, field)
    assertContains(response, f'id="{field}-errors"')
    assert not Task.objects.exists() and not TaskMount.objects.exists()


@pytest.mark.django_db
def test_an_external_port_used_by_a_task_holding_gpus_is_refused(member_client, world):
    TaskFactory(virtual_cluster=world.vc, status=Status.RUNNING, endpoint_port=31501)
    response = member_client.post(CREATE, form_data(world, external_port="31501"))
    assert "The external port 31501 is already used by a running task" in _errors(response, "external_port")
    assert Task.objects.count() == 1


@pytest.mark.django_db
def test_a_mount_path_used_twice_is_refused(member_client, world):
    other = StorageFactory(name="datasets", projects=[world.project])
    response = member_client.post(
        CREATE, form_data(world, **{f"mounts-{other.pk}": "on", f"mounts-{other.pk}-path": "/models/"}),
    )
    assert "The mount path /models/ is used more than once" in _errors(response, "mounts")
    assert not Task.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("exists", [True, False], ids=["not-granted", "missing"])
def test_ungranted_and_missing_relations_get_the_same_answer(member_client, world, exists):
    vc = VirtualClusterFactory(name="a100") if exists else None
    project = ProjectFactory(name="secret") if exists else None
    storage = StorageFactory(name="private") if exists else None
    storage_id = storage.pk if exists else 99999
    response = member_client.post(CREATE, form_data(
        world,
        virtual_cluster=str(vc.pk if exists else 99999),
        project=str(project.pk if exists else 99999),
        **{f"mounts-{storage_id}": "on", f"mounts-{storage_id}-path": "/private"},
    ))
    assert "this one does not exist or is not granted to you" in _errors(response, "virtual_cluster")
    assert "this one does not exist or you are not a member" in _errors(response, "project")
    assert "Select a valid storage: this one does not exist or is not granted to you" in _errors(response, "mounts")
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_the_form_offers_only_what_the_user_was_granted(member_client, world):
    VirtualClusterFactory(name="a100-hidden")
    ProjectFactory(name="project-hidden")
    StorageFactory(name="storage-hidden")
    group = Group.objects.create(name="llm-team")
    world.member.groups.add(group)
    by_group = VirtualClusterFactory(name="l40-by-group")
    by_group.groups.add(group)
    response = member_client.get(CREATE)
    form = response.context["form"]
    assert list(form.fields["project"].queryset) == [world.project]
    assert set(form.fields["virtual_cluster"].queryset) == {world.vc, by_group}
    assertNotContains(response, "a100-hidden")
    assertNotContains(response, "project-hidden")
    assertNotContains(response, "storage-hidden")
    assertContains(response, world.storage.name)
    # SHM_SIZE is offered as the first environment variable.
    assertContains(response, 'name="env-0-name" value="SHM_SIZE"')


@pytest.mark.django_db
def test_blank_env_rows_are_ignored_and_ports_are_dropped_when_not_exposed(member_client, world):
    member_client.post(CREATE, form_data(world, **{"env-3-name": "", "env-3-value": "", "expose_port": None,
                                                   "external_port": "31500"}))
    task = Task.objects.get()
    assert task.env == [{"name": "SHM_SIZE", "value": "60G"}]
    assert task.expose_port is False and task.external_port is None


@pytest.mark.django_db
def test_the_form_as_first_shown_saves_without_a_shm_size(member_client, world):
    shown = member_client.get(CREATE).content.decode()
    assert 'value="SHM_SIZE"' in shown  # the suggested row, its value left to the user
    response = member_client.post(CREATE, form_data(world, **{"env-0-value": ""}))
    assert response.status_code == 302
    assert Task.objects.get().env == []


@pytest.mark.django_db
@pytest.mark.usefixtures("anyone_sets_commands")
def test_copy_opens_the_form_filled_from_the_source_with_task_type_and_project_locked(member_client, world):
    source = task_create(user=world.member, data=task_data(world, command=["python", "-m", "demo_model"]))
    url = reverse("portal:task-copy", args=[source.pk])
    form = member_client.get(url).context["form"]
    assert form["image"].value() == source.image and form["command"].value() == "python -m demo_model"
    assert form.fields["project"].disabled and form.fields["task_type"].disabled
    other = ProjectFactory(name="other", members=[world.member])
    response = member_client.post(url, form_data(world, name="qwen-7b-v2", sku_count="4", project=str(other.pk)))
    copy = Task.objects.exclude(pk=source.pk).get()
    assert response["Location"] == reverse("portal:task-detail", args=[copy.pk])
    assert (copy.name, copy.sku_count, copy.project, copy.status) == ("qwen-7b-v2", 4, world.project, Status.NOT_DEPLOYED)
    assert copy.events.filter(operation="copy").exists()
    assert Project.objects.count() == 2


@pytest.mark.django_db
def test_a_bad_copy_is_not_saved(member_client, world):
    source = task_create(user=world.member, data=task_data(world))
    response = member_client.post(reverse("portal:task-copy", args=[source.pk]), form_data(world, sku_count="0"))
    assert "The SKU count must be at least 1" in _errors(response, "sku_count")
    assert Task.objects.count() == 1


@pytest.mark.django_db
def test_edit_saves_an_idle_task_and_refuses_a_queued_one(member_client, world):
    task = task_create(user=world.member, data=task_data(world))
    url = reverse("portal:task-edit", args=[task.pk])
    member_client.post(url, form_data(world, replicas="2"))
    task.refresh_from_db()
    assert task.replicas == 2
    Task.objects.filter(pk=task.pk).update(status=Status.QUEUED)
    response = member_client.get(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("portal:task-detail", args=[task.pk])
    assertContains(response, "Cannot edit task “qwen-7b”: it is queued.")
    response = member_client.post(url, form_data(world, replicas="3"), follow=True)
    assertContains(response, "Cannot edit task")
    task.refresh_from_db()
    assert task.replicas == 2


@pytest.mark.django_db
def test_nothing_chosen_asks_for_a_choice_and_no_select_shows_dashes(member_client, world):
    response = member_client.post(CREATE, form_data(world, project="", virtual_cluster=""))
    assert _errors(response, "project") == "Choose a project."
    assert _errors(response, "virtual_cluster") == "Choose a virtual cluster."
    page = member_client.get(CREATE).content.decode()
    assert "---------" not in page and "Select…" in page
    member_client.cookies["django_language"] = "zh-hans"
    response = member_client.post(CREATE, form_data(world, project=""))
    assert _errors(response, "project") == "请选择研发项目。"
    assert "请选择" in member_client.get(CREATE).content.decode()


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"env-1-name": "A", "env-1-value": "x\x00y"}, "env"),
        ({"command": "python\x00"}, "command"),
        ({"args": "--a \x00"}, "args"),
        (lambda world: {f"mounts-{world.storage.pk}-path": "/models\x00"}, "mounts"),
        ({"name": "qwen\u202e7b"}, "name"),
        ({"description": "x" * 3000}, "description"),
    ],
    ids=["env value", "command", "args", "mount path", "bidi name", "long description"],
)
def test_nul_and_other_odd_text_is_refused_on_its_field_not_500(manager_client, manager, world, overrides, field):
    """The form goes through the same rule as the API (tasks.validation.check_text): a NUL never reaches PostgreSQL."""
    world.project.members.add(manager)
    overrides = overrides(world) if callable(overrides) else overrides
    response = manager_client.post(CREATE, form_data(world, **overrides))
    assert response.status_code == 200
    assert _errors(response, field), response.context["form"].errors
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_a_member_may_not_set_a_command_on_the_local_runtime(member_client, world, settings):
    settings.COMMAND_OVERRIDE = "managers"
    response = member_client.post(CREATE, form_data(world, command="sh -c 'cat /proc/$PPID/environ'"))
    assert "Only managers may set the command" in _errors(response, "command")
    assert not Task.objects.exists()
    settings.COMMAND_OVERRIDE = "everyone"
    member_client.post(CREATE, form_data(world, command="python -m demo_model"))
    assert Task.objects.get().command == ["python", "-m", "demo_model"]
