import pytest
from django.core.exceptions import ValidationError

from clusters.models import Project, Storage, VirtualCluster
from tasks.models import Task
from tasks.services import task_config, task_copy, task_create, task_delete
from tasks.states import Status
from tests.factories import (
    ManagerFactory, ProjectFactory, StorageFactory, TaskFactory, UserFactory, VirtualClusterFactory,
    task_data,
)
from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db


@pytest.mark.usefixtures("anyone_sets_commands")
def test_copy_keeps_everything_but_what_was_changed(world):
    source = task_create(user=world.member, data=task_data(
        world, env=[{"name": "SHM_SIZE", "value": "60G"}, {"name": "MODEL", "value": "qwen"}],
        command=["python", "-m", "vllm"], args=["--tp", "2"], description="original",
    ))
    copy = task_copy(task=source, user=world.member, overrides={"sku_count": 4, "image": "registry.example.com/llm/vllm:0.7.0"})
    before, after = task_config(source), task_config(copy)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"name", "sku_count", "image"}
    assert after["name"] == f"{source.name} (copy)"
    assert copy.status == Status.NOT_DEPLOYED and copy.pk != source.pk
    assert copy.events.filter(operation="copy").exists()


@pytest.mark.parametrize("status", list(Status))
def test_copy_from_any_state_starts_not_deployed(world, status):
    source = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member, status=status)
    assert task_copy(task=source, user=world.member).status == Status.NOT_DEPLOYED


@pytest.mark.parametrize("field", ["task_type", "project"])
def test_copy_cannot_change_task_type_or_project(world, field):
    source = task_create(user=world.member, data=task_data(world))
    other = ProjectFactory(members=[world.member]) if field == "project" else "training"
    with pytest.raises(ValidationError) as refused:
        task_copy(task=source, user=world.member, overrides={field: other})
    assert field in refused.value.message_dict
    assert Task.objects.count() == 1


def test_copy_of_a_long_name_still_fits(world):
    source = task_create(user=world.member, data=task_data(world, name="n" * 100))
    copy = task_copy(task=source, user=world.member)
    assert len(copy.name) == 100 and copy.name.endswith(" (copy)")


def test_copy_is_validated_again(world):
    source = task_create(user=world.member, data=task_data(world))
    with pytest.raises(ValidationError):
        task_copy(task=source, user=world.member, overrides={"sku_count": 0})
    assert Task.objects.count() == 1


def test_delete_only_while_idle(world):
    task = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member, status=Status.RUNNING)
    with pytest.raises(Exception, match="running"):
        task_delete(task=task, user=world.member)
    assert Task.objects.filter(pk=task.pk).exists()
    Task.objects.filter(pk=task.pk).update(status=Status.STOPPED)
    task.refresh_from_db()
    task_delete(task=task, user=world.member)
    assert not Task.objects.filter(pk=task.pk).exists()


def test_user_of_project_a_cannot_see_project_b(world):
    mine = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member)
    bob = UserFactory(username="bob")
    theirs = TaskFactory(project=ProjectFactory(members=[bob]), owner=bob)
    assert list(Task.objects.visible_to(world.member)) == [mine]
    assert list(Task.objects.visible_to(bob)) == [theirs]
    assert set(Task.objects.visible_to(ManagerFactory())) == {mine, theirs}
    assert not Task.objects.visible_to(None).exists()


def test_virtual_clusters_usable_by_direct_or_group_grant(world):
    team = Group.objects.create(name="team")
    via_group = VirtualClusterFactory(name="a100")
    via_group.groups.add(team)
    VirtualClusterFactory(name="ungranted")
    assert set(VirtualCluster.objects.usable_by(world.member)) == {world.vc}
    world.member.groups.add(team)
    assert set(VirtualCluster.objects.usable_by(world.member)) == {world.vc, via_group}
    assert VirtualCluster.objects.visible_to(ManagerFactory()).count() == 3


def test_storages_mountable_through_project_or_user(world):
    direct = StorageFactory(name="home")
    direct.users.add(world.member)
    StorageFactory(name="other-team", projects=[ProjectFactory()])
    assert set(Storage.objects.mountable_by(world.member)) == {world.storage, direct}
    assert set(Storage.objects.mountable_by(world.member, world.project)) == {world.storage, direct}
    outsider = UserFactory()
    assert not Storage.objects.mountable_by(outsider).exists()


def test_projects_of_member(world):
    ProjectFactory(name="not-mine")
    assert list(Project.objects.of_member(world.member)) == [world.project]
