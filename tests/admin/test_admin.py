"""Django admin for managers: every page opens, operations are actions, edits go through the shared rules."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.urls import reverse
from django.utils import translation

from clusters.models import Node
from scheduler.services import task_start
from tasks.models import Task
from tasks.states import Status
from tests.factories import NodeFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"  # messages are asserted in the source language
    return client


def _start(world, **fields):
    task = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member, **fields)
    return task_start(task=task, user=world.member)


@pytest.mark.parametrize(
    "name", ["clusters_project", "clusters_virtualcluster", "clusters_node", "clusters_storage", "tasks_task", "tasks_taskevent"]
)
def test_every_changelist_and_add_page_opens_for_a_manager(world, manager_client, name):
    _start(world)
    assert manager_client.get(reverse(f"admin:{name}_changelist")).status_code == 200
    add = manager_client.get(reverse(f"admin:{name}_add"))
    # Tasks are created in the portal and the API; the timeline is read-only.
    assert add.status_code == (403 if name in ("tasks_task", "tasks_taskevent") else 200)


def test_a_model_developer_cannot_use_admin(client, world):
    client.force_login(world.member)
    response = client.get(reverse("admin:tasks_task_changelist"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_virtual_cluster_list_shows_used_and_schedulable_skus(world, manager_client):
    _start(world, sku_count=3)
    response = manager_client.get(reverse("admin:clusters_virtualcluster_changelist"))
    assert "3 / 16" in response.content.decode()


def _action(client, action, tasks, **extra):
    return client.post(
        reverse("admin:tasks_task_changelist"),
        {"action": action, ACTION_CHECKBOX_NAME: [t.pk for t in tasks], **extra},
        follow=True,
    )


def test_stop_action(world, manager_client):
    task = _start(world)
    assert task.status == Status.DEPLOYING
    _action(manager_client, "stop_tasks", [task])
    task.refresh_from_db()
    assert task.status == Status.STOPPED
    assert task.events.last().actor.is_staff


def test_pin_then_force_start_shows_victims_before_killing(world, manager_client, django_capture_on_commit_callbacks):
    running = _start(world, sku_count=8, name="big-a")
    other = _start(world, sku_count=8, name="big-b")
    urgent = _start(world, sku_count=8, name="urgent")
    assert urgent.status == Status.QUEUED

    response = _action(manager_client, "pin_task", [urgent])
    assert "pinned to the head of its queue" in response.content.decode()
    urgent.refresh_from_db()
    assert urgent.pinned

    preview = manager_client.post(
        reverse("admin:tasks_task_changelist"), {"action": "force_start_task", ACTION_CHECKBOX_NAME: [urgent.pk]}
    )
    page = preview.content.decode()
    assert preview.status_code == 200 and "will be killed" in page
    assert "big-b" in page and "big-a" not in page  # one victim suffices: the most recently started
    assert Task.objects.get(pk=other.pk).status == Status.DEPLOYING  # nothing killed yet

    # The confirmation carries the victims it showed: the deed kills those or none.
    assert f'name="victim" value="{other.pk}"' in page
    stale = _action(manager_client, "force_start_task", [urgent], confirm="yes", victim=[running.pk])
    assert "have changed since the preview" in stale.content.decode()
    assert Task.objects.get(pk=running.pk).status == Status.DEPLOYING
    with django_capture_on_commit_callbacks(execute=True):
        _action(manager_client, "force_start_task", [urgent], confirm="yes", victim=[other.pk])
    statuses = dict(Task.objects.values_list("name", "status"))
    assert statuses == {"big-a": Status.DEPLOYING, "big-b": Status.KILLED, "urgent": Status.DEPLOYING}
    assert mail.outbox and "big-b" in mail.outbox[0].subject
    assert running.pk


def test_pin_refused_for_a_second_task_names_the_pinned_one(world, manager_client):
    _start(world, sku_count=8)
    _start(world, sku_count=8)
    first = _start(world, sku_count=8, name="first")
    second = _start(world, sku_count=8, name="second")
    _action(manager_client, "pin_task", [first])
    response = _action(manager_client, "pin_task", [second])
    assert "“first” is already pinned" in response.content.decode()
    assert not Task.objects.get(pk=second.pk).pinned


def test_manager_actions_hidden_without_the_permissions(client, world):
    staff = UserFactory(is_staff=True)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_task", "change_task"]))
    client.force_login(staff)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    response = client.get(reverse("admin:tasks_task_changelist"))
    actions = [choice[0] for choice in response.context["action_form"].fields["action"].choices]
    assert "stop_tasks" in actions
    assert "pin_task" not in actions and "force_start_task" not in actions


def test_admin_edit_uses_the_shared_validation(world, manager_client):
    task = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member)
    url = reverse("admin:tasks_task_change", args=[task.pk])
    form = manager_client.get(url).context["adminform"].form
    data = {name: form.initial.get(name) for name in form.fields}
    data.update({"image": "docker.io/evil/miner:latest", "env": "[]", "command": "[]", "args": "[]",
                 "virtual_cluster": world.vc.pk, "description": "", "external_port": ""})
    for prefix in ("mounts", "instances", "events"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data = {k: ("" if v is None else v) for k, v in data.items()}
    response = manager_client.post(url, data)
    assert response.status_code == 200
    assert "allowed registry" in str(response.context["adminform"].form.errors["image"])
    task.refresh_from_db()
    assert task.image == "registry.example.com/team/model:v1"
    data["image"] = "registry.example.com/team/model:v2"
    response = manager_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    task.refresh_from_db()
    assert task.image == "registry.example.com/team/model:v2"
    assert task.events.get(operation="edit").actor.is_staff  # recorded as the manager's edit


def test_admin_edit_keeps_a_secret_env_var_sealed_and_never_shows_it(world, manager_client):
    import json

    from tasks.secrets import env_open, env_seal

    token = "hf_s3cr3t-value-that-must-never-show"
    task = TaskFactory(
        project=world.project, virtual_cluster=world.vc, owner=world.member,
        env=env_seal([{"name": "HF_TOKEN", "value": token, "secret": True}]),
    )
    url = reverse("admin:tasks_task_change", args=[task.pk])
    page = manager_client.get(url)
    assert token not in page.content.decode()
    form = page.context["adminform"].form
    data = {name: form.initial.get(name) for name in form.fields}
    data.update({"env": json.dumps(task.env), "command": "[]", "args": "[]", "virtual_cluster": world.vc.pk,
                 "description": "edited in admin", "external_port": ""})
    for prefix in ("mounts", "instances", "events"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data = {k: ("" if v is None else v) for k, v in data.items()}
    response = manager_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    task.refresh_from_db()
    assert task.description == "edited in admin" and env_open(task.env) == [("HF_TOKEN", token, True)]
    # A secret typed into the JSON is sealed on save, never stored as given.
    data["env"] = json.dumps([{"name": "HF_TOKEN", "value": "typed", "secret": True}])
    assert manager_client.post(url, data).status_code == 302
    task.refresh_from_db()
    assert "typed" not in json.dumps(task.env) and env_open(task.env) == [("HF_TOKEN", "typed", True)]


def test_admin_edit_of_a_task_that_started_meanwhile_saves_nothing(world, manager_client):
    task = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member)
    url = reverse("admin:tasks_task_change", args=[task.pk])
    form = manager_client.get(url).context["adminform"].form
    data = {name: ("" if form.initial.get(name) is None else form.initial.get(name)) for name in form.fields}
    data.update({"image": "registry.example.com/team/model:v3", "env": "[]", "command": "[]", "args": "[]",
                 "virtual_cluster": world.vc.pk, "external_port": ""})
    for prefix in ("mounts", "instances", "events"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    task_start(task=task, user=world.member)
    response = manager_client.post(url, data, follow=True)
    assert "it is deploying" in response.content.decode()
    task.refresh_from_db()
    assert task.image == "registry.example.com/team/model:v1"


def test_admin_deletes_only_idle_tasks_and_through_the_service(world, manager, manager_client):
    manager.is_superuser = True  # delete_task is not a managers' permission; a superuser has it
    manager.save()
    idle = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member, name="idle")
    running = _start(world, name="busy")
    assert manager_client.get(reverse("admin:tasks_task_delete", args=[running.pk])).status_code == 403
    changelist = reverse("admin:tasks_task_changelist")
    refused = manager_client.post(
        changelist, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [idle.pk, running.pk], "post": "yes"}
    )
    assert refused.status_code == 403  # Django refuses the whole bulk delete when one may not go
    assert set(Task.objects.values_list("name", flat=True)) == {"idle", "busy"}
    manager_client.post(changelist, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [idle.pk], "post": "yes"})
    assert set(Task.objects.values_list("name", flat=True)) == {"busy"}
    assert Task.objects.get(name="busy").instances.exists()


def test_cordon_action_marks_machines(world, manager_client):
    node = world.nodes[0]
    manager_client.post(
        reverse("admin:clusters_node_changelist"), {"action": "cordon", ACTION_CHECKBOX_NAME: [node.pk]}, follow=True
    )
    assert not Node.objects.get(pk=node.pk).schedulable


def test_adding_a_machine_starts_a_queued_task(world, manager_client):
    for _ in range(2):
        _start(world, sku_count=8)
    waiting = _start(world, sku_count=8)
    assert waiting.status == Status.QUEUED
    response = manager_client.post(reverse("admin:clusters_node_add"), {
        "virtual_cluster": world.vc.pk, "name": "gpu-new", "gpu_type": "NVIDIA-H100", "sku_capacity": 8,
        "schedulable": "on",
    })
    assert response.status_code == 302
    waiting.refresh_from_db()
    assert waiting.status == Status.DEPLOYING
    assert waiting.instances.get().node_name == "gpu-new"


def test_uncordoning_a_machine_starts_a_queued_task(world, manager_client):
    spare = NodeFactory(virtual_cluster=world.vc, name="gpu-spare", schedulable=False)
    for _ in range(2):
        _start(world, sku_count=8)
    waiting = _start(world, sku_count=8)
    assert waiting.status == Status.QUEUED
    manager_client.post(
        reverse("admin:clusters_node_changelist"), {"action": "uncordon", ACTION_CHECKBOX_NAME: [spare.pk]}, follow=True
    )
    waiting.refresh_from_db()
    assert waiting.status == Status.DEPLOYING


def test_a_machine_cannot_shrink_below_what_runs_on_it_nor_change_cluster(world, manager_client):
    task = _start(world, sku_count=6)
    node = task.instances.get().node
    url = reverse("admin:clusters_node_change", args=[node.pk])
    data = {"name": node.name, "gpu_type": node.gpu_type, "sku_capacity": 4, "schedulable": "on"}
    response = manager_client.post(url, data)
    assert "use 6 SKUs of this machine" in response.content.decode()
    node.refresh_from_db()
    assert node.sku_capacity == 8
    assert manager_client.post(url, {**data, "sku_capacity": 6}).status_code == 302
    assert "virtual_cluster" not in manager_client.get(url).context["adminform"].form.fields


@pytest.mark.parametrize("how", ["delete view", "delete action"])
def test_removing_a_machine_takes_out_a_queued_task_that_can_no_longer_ever_fit(world, manager_client, how):
    _start(world, sku_count=8)
    big = _start(world, sku_count=8, replicas=2, name="big")
    assert big.status == Status.QUEUED
    spare = next(node for node in world.nodes if not node.instances.exists())
    if how == "delete view":
        manager_client.post(reverse("admin:clusters_node_delete", args=[spare.pk]), {"post": "yes"})
    else:
        manager_client.post(
            reverse("admin:clusters_node_changelist"),
            {"action": "delete_selected", ACTION_CHECKBOX_NAME: [spare.pk], "post": "yes"},
        )
    assert not Node.objects.filter(pk=spare.pk).exists()
    big.refresh_from_db()
    assert big.status == Status.STOPPED
    with translation.override("en"):
        assert "can never run on h100" in str(big.status_message)


def test_a_machine_nothing_holds_can_be_deleted_one_that_holds_cannot(world, manager_client):
    """Instances of earlier runs no longer pin their machine for good (it was PROTECT): they keep its name."""
    from scheduler.services import task_stop
    from tasks.models import TaskInstance

    done = _start(world, sku_count=8)
    held_elsewhere = _start(world, sku_count=8)
    task_stop(task=done, user=world.member)
    free_node = TaskInstance.objects.get(task=done).node
    busy_node = TaskInstance.objects.get(task=held_elsewhere).node
    assert manager_client.get(reverse("admin:clusters_node_delete", args=[busy_node.pk])).status_code == 403
    response = manager_client.post(reverse("admin:clusters_node_delete", args=[free_node.pk]), {"post": "yes"})
    assert response.status_code == 302
    old = TaskInstance.objects.get(task=done)
    assert old.node is None and old.node_name == free_node.name
    assert TaskInstance.objects.get(task=held_elsewhere).node == busy_node


@pytest.mark.parametrize(
    "kind, source, accepted",
    [("hostPath", "relative/dir", False), ("hostPath", "/data/models", True),
     ("nfs", "nfs-01/export", False), ("nfs", "nfs-01:/export/models", True), ("pvc", "models-claim", True)],
)
def test_a_storage_source_must_fit_its_kind(world, manager_client, kind, source, accepted):
    from clusters.models import Storage

    response = manager_client.post(
        reverse("admin:clusters_storage_add"), {"name": "scratch", "kind": kind, "source": source},
    )
    assert Storage.objects.filter(name="scratch").exists() == accepted
    if not accepted:
        assert "source" in response.context["adminform"].form.errors


def test_a_manager_adds_a_user_resets_a_password_and_puts_them_in_a_project_and_a_group(world, manager, manager_client):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    from tasks.permissions import MANAGERS_GROUP

    User = get_user_model()
    assert manager_client.get(reverse("admin:auth_user_changelist")).status_code == 200
    assert manager_client.get(reverse("admin:auth_group_changelist")).status_code == 200
    response = manager_client.post(reverse("admin:auth_user_add"), {
        "username": "newbie", "password1": "a-long-Pass-2026", "password2": "a-long-Pass-2026", "usable_password": "true",
    })
    assert response.status_code == 302, response.context["adminform"].form.errors
    newbie = User.objects.get(username="newbie")

    page = manager_client.get(reverse("admin:auth_user_change", args=[newbie.pk]))
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert "is_superuser" not in form.fields and "user_permissions" not in form.fields
    managers = Group.objects.get(name=MANAGERS_GROUP)
    greedy = Group.objects.create(name="greedy")
    greedy.permissions.add(*Permission.objects.filter(codename="delete_user"))
    assert list(form.fields["groups"].queryset) == [managers]

    through = "Project_members-"
    data = {
        "username": "newbie", "is_active": "on", "groups": [managers.pk], "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00", "initial-date_joined_0": "2026-01-01", "initial-date_joined_1": "00:00:00",
        f"{through}TOTAL_FORMS": "1", f"{through}INITIAL_FORMS": "0", f"{through}0-project": world.project.pk,
    }
    response = manager_client.post(reverse("admin:auth_user_change", args=[newbie.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert newbie.groups.filter(name=MANAGERS_GROUP).exists()
    assert world.project.members.filter(pk=newbie.pk).exists()

    password = manager_client.post(reverse("admin:auth_user_password_change", args=[newbie.pk]), {
        "password1": "another-Pass-2026", "password2": "another-Pass-2026", "usable_password": "true",
    })
    assert password.status_code == 302
    newbie.refresh_from_db()
    assert newbie.check_password("another-Pass-2026")


def test_a_manager_cannot_change_a_superuser(manager_client):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "root@example.com", "x-Pass-2026")
    page = manager_client.get(reverse("admin:auth_user_change", args=[root.pk]))
    assert page.status_code == 200 and page.context["has_change_permission"] is False  # read only
    assert manager_client.post(reverse("admin:auth_user_change", args=[root.pk]), {"username": "mine"}).status_code == 403
    assert manager_client.post(reverse("admin:auth_user_password_change", args=[root.pk]), {
        "password1": "stolen-Pass-2026", "password2": "stolen-Pass-2026",
    }).status_code == 403
def test_a_manager_sets_quotas_in_the_virtual_cluster_and_the_queue_moves(world, manager_client):
    from clusters.models import PriorityClass, ProjectQuota

    world.vc.nodes.update(sku_capacity=4)
    ProjectQuota.objects.create(virtual_cluster=world.vc, project=world.project, guaranteed_skus=0, borrowing_limit=0)
    waiting = _start(world, sku_count=1)
    assert waiting.status == "queued"
    url = reverse("admin:clusters_virtualcluster_change", args=[world.vc.pk])
    page = manager_client.get(url)
    assert page.status_code == 200 and "quotas-0-guaranteed_skus" in page.content.decode()
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name not in ("users", "groups")}
    data.update({"queue_policy": "fair_share", "reclaim": "on"})
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        prefix = formset.formset.prefix
        data.update({f"{prefix}-{key}": value for key, value in management.initial.items()})
        for i, inline in enumerate(formset.formset.forms):
            data.update({f"{prefix}-{i}-{key}": value for key, value in inline.initial.items() if value is not None})
            data[f"{prefix}-{i}-id"] = inline.instance.pk
    data["quotas-0-guaranteed_skus"] = "2"
    answer = manager_client.post(url, data)
    assert answer.status_code == 302, [f.formset.errors for f in answer.context["inline_admin_formsets"]] if answer.context else answer
    assert ProjectQuota.objects.get().guaranteed_skus == 2
    world.vc.refresh_from_db()
    assert world.vc.reclaim and world.vc.queue_policy == "fair_share"
    assert type(waiting).objects.get(pk=waiting.pk).status == "deploying"  # the pass ran with the new quota
    assert manager_client.get(reverse("admin:clusters_priorityclass_add")).status_code == 200
    PriorityClass.objects.create(name="urgent", value=100)
    assert "urgent" in manager_client.get(reverse("admin:clusters_priorityclass_changelist")).content.decode()
