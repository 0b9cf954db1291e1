"""The operations through the API: each answers the task as it now is, or SPEC's 403 / 409."""

import pytest

from tasks.models import Task
from tasks.states import Status
from tests.api.conftest import holding_task, world_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def full_vc(world):
    """Both machines of the world's VC wholly held by running tasks."""
    return [
        holding_task(world, name=f"big-{i}", node=node, sku_count=8, endpoint_port=30100 + i)
        for i, node in enumerate(world.nodes)
    ]


def post(client, task, operation):
    return client.post(f"/api/v1/tasks/{task.pk}/{operation}/")


def test_start_places_a_task_that_fits(world, member_api, idle_task):
    response = post(member_api, idle_task, "start")

    assert response.status_code == 200, response.data
    assert response.json()["status"] == "deploying"
    assert response.json()["allowed_actions"] == ["stop", "copy"]


def test_start_queues_a_task_that_does_not_fit_and_says_why(world, member_api, idle_task, full_vc):
    response = post(member_api, idle_task, "start")

    assert response.status_code == 200, response.data
    task = response.json()
    assert task["status"] == "queued" and task["queue_position"] == 1
    assert task["queued_at"] is not None and task["pending_reason"]
    assert member_api.get(f"/api/v1/tasks/{idle_task.pk}/").json()["queue_position"] == 1


def test_start_of_a_running_task_answers_409_naming_its_state(member_api, running_task):
    response = post(member_api, running_task, "start")

    assert response.status_code == 409
    assert response.json() == {"detail": "Cannot start task “serving”: it is running.", "status": "running"}


def test_start_of_a_task_that_can_never_fit_is_refused(world, member_api):
    task = world_task(world, name="huge", sku_count=8, replicas=3)

    response = post(member_api, task, "start")

    assert response.status_code == 409
    assert response.json()["status"] == "not_deployed" and "huge" in response.json()["detail"]
    assert Task.objects.get(pk=task.pk).status == Status.NOT_DEPLOYED


def test_stop_tears_a_running_task_down(member_api, running_task):
    response = post(member_api, running_task, "stop")

    assert response.status_code == 200
    assert response.json()["status"] == "stopped" and response.json()["endpoint"] is None


def test_stop_of_a_stopped_task_answers_409(world, member_api):
    task = world_task(world, name="done", status=Status.STOPPED)

    response = post(member_api, task, "stop")

    assert response.status_code == 409
    assert response.json() == {"detail": "Cannot stop task “done”: it is stopped.", "status": "stopped"}


@pytest.fixture
def queued_task(world, member_api, idle_task, full_vc):
    post(member_api, idle_task, "start")
    idle_task.refresh_from_db()
    assert idle_task.status == Status.QUEUED
    return idle_task


@pytest.mark.parametrize("operation", ["pin", "unpin", "force-start"])
def test_manager_operations_answer_403_to_a_member(member_api, queued_task, operation):
    response = post(member_api, queued_task, operation)

    assert response.status_code == 403
    assert response.json()["detail"].startswith("Only managers may")


def test_pin_and_unpin(manager_api, queued_task):
    pinned = post(manager_api, queued_task, "pin")
    assert pinned.status_code == 200, pinned.data
    assert pinned.json()["pinned"] is True
    assert pinned.json()["allowed_actions"] == ["stop", "unpin", "force_start", "copy"]

    again = post(manager_api, queued_task, "pin")
    assert again.status_code == 409 and "already pinned" in again.json()["detail"]

    unpinned = post(manager_api, queued_task, "unpin")
    assert unpinned.status_code == 200 and unpinned.json()["pinned"] is False


def test_a_second_pin_in_one_queue_names_the_pinned_task(world, member_api, manager_api, queued_task):
    other = world_task(world, name="second")
    post(member_api, other, "start")
    post(manager_api, queued_task, "pin")

    response = post(manager_api, other, "pin")

    assert response.status_code == 409
    assert "idle" in response.json()["detail"]


def test_force_start_previews_then_kills_the_victims(manager_api, queued_task, full_vc):
    post(manager_api, queued_task, "pin")

    preview = manager_api.get(f"/api/v1/tasks/{queued_task.pk}/force-start/")

    assert preview.status_code == 200, preview.data
    assert preview.json()["fits"] is True
    [victim] = preview.json()["victims"]
    assert set(victim) == {"id", "name", "owner", "status", "started_at"}
    assert victim["id"] in {t.pk for t in full_vc} and victim["owner"] == "alice"

    response = post(manager_api, queued_task, "force-start")

    assert response.status_code == 200, response.data
    assert response.json()["status"] == "deploying"
    assert Task.objects.get(pk=victim["id"]).status == Status.KILLED


def test_force_start_of_an_unpinned_task_answers_409(manager_api, queued_task):
    response = manager_api.get(f"/api/v1/tasks/{queued_task.pk}/force-start/")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "Cannot force start task “idle”: it is queued but not pinned.", "status": "queued",
    }


def test_the_log_is_plain_text_with_a_tail(member_api, running_task):
    instance = running_task.instances.get()

    whole = member_api.get(f"/api/v1/instances/{instance.pk}/logs/")
    tail = member_api.get(f"/api/v1/instances/{instance.pk}/logs/?tail=2")

    assert whole.status_code == 200 and whole["Content-Type"] == "text/plain; charset=utf-8"
    assert whole.streaming and b"".join(whole.streaming_content) == b"line 1\nline 2\nline 3\n"  # streamed whole
    assert tail.content == b"line 2\nline 3\n"


def test_the_log_downloads_as_an_attachment(member_api, running_task):
    instance = running_task.instances.get()

    response = member_api.get(f"/api/v1/instances/{instance.pk}/logs/?download=1")

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="serving-{running_task.pk}-0.log"'
    assert b"".join(response.streaming_content) == b"line 1\nline 2\nline 3\n"


@pytest.mark.parametrize("tail", ["0", "-1", "x"])
def test_a_bad_tail_answers_400(member_api, running_task, tail):
    instance = running_task.instances.get()

    response = member_api.get(f"/api/v1/instances/{instance.pk}/logs/?tail={tail}")

    assert response.status_code == 400 and "tail" in response.json()


def test_a_text_reader_reads_errors_as_text(member_api):
    response = member_api.get("/api/v1/instances/987654/logs/", HTTP_ACCEPT="text/plain")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"Not found."


def test_a_text_reader_reads_field_errors_as_text(member_api, running_task):
    instance = running_task.instances.get()

    response = member_api.get(f"/api/v1/instances/{instance.pk}/logs/?tail=0", HTTP_ACCEPT="text/plain")

    assert response.status_code == 400
    assert response.content == b"tail: Ensure this value is greater than or equal to 1."
