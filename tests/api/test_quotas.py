"""``/api/v1/quotas/`` and ``/api/v1/priority-classes/``: everyone reads what concerns them, managers write."""

import pytest

from clusters.models import PriorityClass, ProjectQuota
from scheduler.services import task_start
from tasks.models import Task
from tasks.states import Status
from tests.api.conftest import api_client, world_task
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_a_manager_gives_a_quota_and_the_waiting_task_it_lets_start_starts(world, people):
    world.vc.nodes.update(sku_capacity=4)
    other = ProjectFactory(name="proj-b")
    ProjectQuota.objects.create(virtual_cluster=world.vc, project=world.project, guaranteed_skus=0, borrowing_limit=0)
    task = task_start(task=world_task(world, sku_count=1), user=world.member)
    assert task.status == Status.QUEUED
    quota = ProjectQuota.objects.get()
    answer = api_client(people.manager).patch(f"/api/v1/quotas/{quota.pk}/", {"guaranteed_skus": 2}, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["guaranteed_skus"] == 2 and answer.json()["project_name"] == world.project.name
    assert Task.objects.get(pk=task.pk).status == Status.DEPLOYING
    created = api_client(people.manager).post(
        "/api/v1/quotas/", {"virtual_cluster": world.vc.pk, "project": other.pk, "guaranteed_skus": 4}, format="json"
    )
    assert created.status_code == 201 and created.json()["borrowing_limit"] is None


def test_members_read_the_quotas_of_their_vcs_but_may_not_write_them(world, people):
    ProjectQuota.objects.create(virtual_cluster=world.vc, project=world.project, guaranteed_skus=8)
    member = api_client(world.member)
    listed = member.get("/api/v1/quotas/").json()
    assert [q["guaranteed_skus"] for q in listed["results"]] == [8]
    assert api_client(people.outsider).get("/api/v1/quotas/").json()["results"] == []
    refused = member.post(
        "/api/v1/quotas/", {"virtual_cluster": world.vc.pk, "project": world.project.pk, "guaranteed_skus": 9}, format="json"
    )
    assert refused.status_code == 403


@pytest.mark.parametrize("body, field", [
    ({"guaranteed_skus": -1}, "guaranteed_skus"),
    ({"guaranteed_skus": "many"}, "guaranteed_skus"),
    ({"guaranteed_skus": 1, "borrowing_limit": -2}, "borrowing_limit"),
    ({"guaranteed_skus": 1, "project": 999_999}, "project"),
])
def test_bad_quotas_answer_400_on_the_field(world, people, body, field):
    body = {"virtual_cluster": world.vc.pk, "project": world.project.pk, **body}
    answer = api_client(people.manager).post("/api/v1/quotas/", body, format="json")
    assert answer.status_code == 400 and field in answer.json()
    assert not ProjectQuota.objects.exists()


def test_one_quota_per_project_and_vc(world, people):
    ProjectQuota.objects.create(virtual_cluster=world.vc, project=world.project, guaranteed_skus=8)
    answer = api_client(people.manager).post(
        "/api/v1/quotas/", {"virtual_cluster": world.vc.pk, "project": world.project.pk, "guaranteed_skus": 1}, format="json"
    )
    assert answer.status_code == 400
    assert ProjectQuota.objects.get().guaranteed_skus == 8


def test_priority_classes_granted_decide_who_may_use_which(world, people, member_api):
    PriorityClass.objects.create(name="normal", value=0)
    urgent = PriorityClass.objects.create(name="urgent", value=100)
    urgent.users.add(people.manager)
    assert [c["name"] for c in member_api.get("/api/v1/priority-classes/").json()["results"]] == ["normal"]
    task = world_task(world)
    refused = member_api.patch(f"/api/v1/tasks/{task.pk}/", {"priority_class": urgent.pk}, format="json")
    assert refused.status_code == 400 and "priority_class" in refused.json()
    urgent.users.add(world.member)
    answer = member_api.patch(f"/api/v1/tasks/{task.pk}/", {"priority_class": urgent.pk}, format="json")
    assert answer.status_code == 200 and answer.json()["priority_class"] == urgent.pk


def test_a_priority_class_given_to_tasks_cannot_be_deleted(world, people):
    urgent = PriorityClass.objects.create(name="urgent", value=100)
    world_task(world, priority_class=urgent)
    manager = api_client(people.manager)
    answer = manager.delete(f"/api/v1/priority-classes/{urgent.pk}/")
    assert answer.status_code == 409 and "urgent" in answer.json()["detail"]
    assert manager.post("/api/v1/priority-classes/", {"name": "low", "value": -10}, format="json").status_code == 201
    assert api_client(world.member).post("/api/v1/priority-classes/", {"name": "x", "value": 1}, format="json").status_code == 403
