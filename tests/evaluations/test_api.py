"""The evaluation API: who may see and start runs, the 409s and 400s, and the answers' shape."""

import pytest

from evaluations.models import Evaluation, EvaluationStatus
from evaluations.services import evaluation_run
from tasks.states import Status
from tests.api.conftest import api_client as api
from tests.factories import ManagerFactory, UserFactory

from .conftest import running_task

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]


def url(task):
    return f"/api/v1/tasks/{task.pk}/evaluations/"


def test_post_starts_a_run_and_get_lists_it(world, enqueued, django_capture_on_commit_callbacks):
    task = running_task(world, port=31999)
    with django_capture_on_commit_callbacks(execute=True):
        response = api(world.member).post(url(task), {"concurrency": 2, "request_count": 10}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert enqueued == [body["id"]]
    assert body["status"] == "pending" and body["created_by"] == "alice" and body["task"] == task.pk
    assert (body["concurrency"], body["request_count"], body["max_tokens"]) == (2, 10, 128)
    assert body["endpoint"] == "http://127.0.0.1:31999"

    listed = api(world.member).get(url(task)).json()
    assert [run["id"] for run in listed["results"]] == [body["id"]]
    detail = api(world.member).get(f"/api/v1/evaluations/{body['id']}/")
    assert detail.status_code == 200 and detail.json()["results"] == {}


def test_finished_run_reads_with_its_results(world, enqueued, fast_server):
    task = running_task(world, port=fast_server.port)
    created = api(world.member).post(url(task), {"request_count": 4, "max_tokens": 3}, format="json").json()
    evaluation_run(evaluation_id=created["id"])
    body = api(world.member).get(f"/api/v1/evaluations/{created['id']}/").json()
    assert body["status"] == "succeeded" and body["model_name"] == "demo-llm"
    results = body["results"]
    assert (results["completed"], results["failed"], results["total_output_tokens"]) == (4, 0, 12)
    assert set(results["ttft_ms"]) == {"mean", "p50", "p90", "p99"}


@pytest.mark.parametrize("status", [Status.NOT_DEPLOYED, Status.QUEUED, Status.DEPLOYING, Status.STOPPED,
                                    Status.FAILED, Status.KILLED])
def test_409_unless_running(world, enqueued, status):
    task = running_task(world, port=31999, status=status)
    response = api(world.member).post(url(task), {}, format="json")
    assert response.status_code == 409
    assert response.json()["status"] == status and "Cannot evaluate" in response.json()["detail"]
    assert not Evaluation.objects.exists()


def test_409_without_endpoint_and_while_another_run_is_active(world, enqueued):
    closed = running_task(world, port=None, expose_port=False, name="closed")
    response = api(world.member).post(url(closed), {}, format="json")
    assert response.status_code == 409 and "no endpoint" in response.json()["detail"]

    task = running_task(world, port=31999)
    Evaluation.objects.create(task=task, status=EvaluationStatus.RUNNING)
    response = api(world.member).post(url(task), {}, format="json")
    assert response.status_code == 409 and "still running" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"concurrency": 0}, "concurrency"), ({"endpoint_kind": "embeddings"}, "endpoint_kind"),
     ({"request_count": "many"}, "request_count"), ({"timeout_seconds": 10_000}, "timeout_seconds")],
)
def test_400_for_bad_parameters(world, enqueued, body, field):
    task = running_task(world, port=31999)
    response = api(world.member).post(url(task), body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not Evaluation.objects.exists()


def test_invisible_tasks_and_runs_answer_404(world, enqueued):
    task = running_task(world, port=31999)
    run = Evaluation.objects.create(task=task, status=EvaluationStatus.SUCCEEDED)
    outsider = api(UserFactory(username="mallory"))
    assert outsider.get(url(task)).status_code == 404
    assert outsider.post(url(task), {}, format="json").status_code == 404
    assert outsider.get(f"/api/v1/evaluations/{run.pk}/").status_code == 404
    assert not Evaluation.objects.filter(created_by__username="mallory").exists()


def test_managers_see_every_run_and_anonymous_callers_none(world, enqueued):
    task = running_task(world, port=31999)
    run = Evaluation.objects.create(task=task, status=EvaluationStatus.SUCCEEDED)
    assert api(ManagerFactory()).get(f"/api/v1/evaluations/{run.pk}/").status_code == 200
    assert api().get(url(task)).status_code == 401


def test_list_query_count_is_flat(world, enqueued, django_assert_max_num_queries):
    task = running_task(world, port=31999)
    for _ in range(5):
        Evaluation.objects.create(task=task, status=EvaluationStatus.SUCCEEDED, created_by=world.member)
    client = api(world.member)
    with django_assert_max_num_queries(6):
        response = client.get(url(task))
    assert response.json()["count"] == 5
