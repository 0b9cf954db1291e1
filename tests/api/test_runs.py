"""Runs through the API: a task's runs newest first, one run with its instances, any run's instance log."""

import pytest

from scheduler.services import task_start, task_stop
from tasks.models import TaskInstance
from tests.api.conftest import api_client, world_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def twice(world):
    """A task started, stopped and started again: (task, run 1, run 2); run 1's log is archived."""
    task = task_start(task=world_task(world, name="twice"), user=world.member)
    first = task.current_run
    first.instances.update(log_archive="run one: CUDA error\n", log_archived=True)
    task_stop(task=task, user=world.member)
    task = task_start(task=task, user=world.member)
    return task, first, task.current_run


def test_a_tasks_runs_newest_first_paginated_with_their_instances(member_api, twice):
    task, first, second = twice
    answer = member_api.get(f"/api/v1/tasks/{task.pk}/runs/").json()
    assert answer["count"] == 2
    newest, oldest = answer["results"]
    assert (newest["id"], newest["number"], newest["outcome"], newest["ended_at"]) == (second.pk, 2, "", None)
    assert (oldest["id"], oldest["number"], oldest["outcome"]) == (first.pk, 1, "stopped")
    assert oldest["started_by"] == task.owner.username and oldest["config"]["image"] == task.image
    assert [i["id"] for i in oldest["instances"]] == list(first.instances.values_list("pk", flat=True))
    assert oldest["gpu_count"] == task.sku_count * task.virtual_cluster.sku_gpus


def test_one_run_and_the_log_of_an_earlier_runs_instance(member_api, twice):
    _task, first, _second = twice
    run = member_api.get(f"/api/v1/runs/{first.pk}/").json()
    assert run["number"] == 1 and len(run["instances"]) == 1
    instance_id = run["instances"][0]["id"]
    log = member_api.get(f"/api/v1/instances/{instance_id}/logs/", {"tail": 1}, HTTP_ACCEPT="text/plain")
    assert log.content.decode() == "run one: CUDA error\n"


def test_the_tasks_instances_are_its_current_runs(member_api, twice):
    task, _first, second = twice
    answer = member_api.get(f"/api/v1/tasks/{task.pk}/instances/").json()["results"]
    assert [i["run"] for i in answer] == [second.pk]
    assert TaskInstance.objects.filter(task=task).count() == 2  # run 1's are kept


def test_another_projects_runs_are_not_found(world, people, twice):
    task, first, _second = twice
    outsider = api_client(people.outsider)
    assert outsider.get(f"/api/v1/runs/{first.pk}/").status_code == 404
    assert outsider.get(f"/api/v1/tasks/{task.pk}/runs/").status_code == 404
    assert api_client(people.manager).get(f"/api/v1/runs/{first.pk}/").status_code == 200


def test_a_force_start_whose_victims_changed_answers_409_with_the_new_list(world, manager_api):
    small = task_start(task=world_task(world, name="small", sku_count=8), user=world.member)
    other = task_start(task=world_task(world, name="other", sku_count=8), user=world.member)
    urgent = task_start(task=world_task(world, name="urgent", sku_count=8), user=world.member)
    manager_api.post(f"/api/v1/tasks/{urgent.pk}/pin/")
    preview = manager_api.get(f"/api/v1/tasks/{urgent.pk}/force-start/").json()
    (victim,) = preview["victims"]
    stale = [small.pk if victim["id"] == other.pk else other.pk]
    answer = manager_api.post(f"/api/v1/tasks/{urgent.pk}/force-start/", {"victims": stale}, format="json")
    assert answer.status_code == 409 and [v["id"] for v in answer.json()["victims"]] == [victim["id"]]
    assert answer.json()["status"] == "queued"
    done = manager_api.post(f"/api/v1/tasks/{urgent.pk}/force-start/", {"victims": [victim["id"]]}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "deploying"
