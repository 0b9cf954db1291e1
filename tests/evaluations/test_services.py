"""Starting and running evaluations: the refusals, and runs against the real demo model server."""

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from evaluations import services
from evaluations.models import Evaluation, EvaluationStatus, FailureReason
from evaluations.services import evaluation_create, evaluation_run
from tasks.exceptions import InvalidTransition, OperationRefused
from tasks.models import Task
from tasks.states import Status
from tests.demo_model.process import DemoModelProcess, free_port

from .conftest import running_task

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]

PARAMETERS = {"max_tokens": 8, "request_count": 8, "concurrency": 4}


def test_create_records_the_run_and_enqueues_it_after_commit(world, enqueued, django_capture_on_commit_callbacks):
    task = running_task(world, port=31999, env=[{"name": "SHM_SIZE", "value": "8G"}])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        evaluation = evaluation_create(task=task, user=world.member, parameters=PARAMETERS)
        assert enqueued == []  # not before the commit
    assert len(callbacks) == 1 and enqueued == [evaluation.pk]
    assert evaluation.status == EvaluationStatus.PENDING and evaluation.created_by == world.member
    assert evaluation.endpoint == "http://127.0.0.1:31999"
    assert evaluation.task_config == {
        "image": task.image, "sku_count": 1, "replicas": 1, "gpu_type": "NVIDIA-H100",
        "env": [{"name": "SHM_SIZE", "value": "8G"}],
    }


@pytest.mark.parametrize("status", sorted(set(Status.values) - {Status.RUNNING}))
def test_only_running_tasks_can_be_evaluated(world, enqueued, status):
    task = running_task(world, port=31999, status=status)
    with pytest.raises(InvalidTransition, match="Cannot evaluate"):
        evaluation_create(task=task, user=world.member, parameters=PARAMETERS)
    assert not Evaluation.objects.exists()


def test_a_task_without_endpoint_is_refused(world, enqueued):
    task = running_task(world, port=None, expose_port=False)
    with pytest.raises(OperationRefused, match="no endpoint"):
        evaluation_create(task=task, user=world.member, parameters=PARAMETERS)


def test_one_run_per_task_at_a_time(world, enqueued):
    task = running_task(world, port=31999)
    first = evaluation_create(task=task, user=world.member, parameters=PARAMETERS)
    with pytest.raises(OperationRefused, match=f"#{first.pk}.*still pending"):
        evaluation_create(task=task, user=world.member, parameters=PARAMETERS)
    other = running_task(world, port=31998, name="other")
    evaluation_create(task=other, user=world.member, parameters=PARAMETERS)  # another task may
    Evaluation.objects.filter(pk=first.pk).update(status=EvaluationStatus.SUCCEEDED)
    evaluation_create(task=task, user=world.member, parameters=PARAMETERS)  # and this one once it ended


def test_the_database_holds_one_active_run_per_task(world):
    from django.db import IntegrityError

    task = running_task(world, port=31999)
    Evaluation.objects.create(task=task, status=EvaluationStatus.RUNNING)
    with pytest.raises(IntegrityError):
        Evaluation.objects.create(task=task, status=EvaluationStatus.PENDING)


def test_an_abandoned_run_does_not_block_the_next(world, enqueued):
    task = running_task(world, port=31999)
    stale = Evaluation.objects.create(
        task=task, status=EvaluationStatus.RUNNING, request_count=10, concurrency=10, timeout_seconds=5,
        started_at=timezone.now() - timedelta(minutes=10),
    )
    evaluation_create(task=task, user=world.member, parameters=PARAMETERS)
    stale.refresh_from_db()
    assert stale.status == EvaluationStatus.FAILED and stale.failure_reason == FailureReason.ABANDONED


def test_the_safety_net_fails_only_runs_past_their_longest_duration(world):
    from evaluations.tasks import fail_abandoned_evaluations

    now = timezone.now()
    params = {"request_count": 10, "concurrency": 5, "timeout_seconds": 30}  # at most 2 × 30 s, + 2 min slack
    stale = Evaluation.objects.create(task=running_task(world, port=31999), status=EvaluationStatus.RUNNING,
                                      started_at=now - timedelta(minutes=3), **params)
    fresh = Evaluation.objects.create(task=running_task(world, port=31998, name="b"), status=EvaluationStatus.RUNNING,
                                      started_at=now - timedelta(minutes=2), **params)
    lost = Evaluation.objects.create(task=running_task(world, port=31997, name="c"), **params)
    Evaluation.objects.filter(pk=lost.pk).update(created_at=now - timedelta(minutes=35))  # never picked up
    waiting = Evaluation.objects.create(task=running_task(world, port=31996, name="d"), **params)
    # Queued behind other evaluations for longer than it would run: still waiting its turn, not lost.
    Evaluation.objects.filter(pk=waiting.pk).update(created_at=now - timedelta(minutes=10))

    fail_abandoned_evaluations.apply()

    statuses = dict(Evaluation.objects.values_list("pk", "failure_reason"))
    assert statuses == {
        stale.pk: FailureReason.ABANDONED, fresh.pk: "", lost.pk: FailureReason.ABANDONED, waiting.pk: "",
    }


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"request_count": 100_000}, "request_count"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"endpoint_kind": "embeddings"}, "endpoint_kind"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"request_rate": 0}, "request_rate"),
    ],
)
def test_bad_parameters_are_refused_with_field_errors(world, enqueued, parameters, field):
    task = running_task(world, port=31999)
    with pytest.raises(ValidationError) as error:
        evaluation_create(task=task, user=world.member, parameters=parameters)
    assert field in error.value.message_dict
    assert not Evaluation.objects.exists() and enqueued == []


def test_run_measures_the_demo_model(world, enqueued, demo_server):
    task = running_task(world, port=demo_server.port)
    evaluation = evaluation_create(task=task, user=world.member, parameters={**PARAMETERS, "endpoint_kind": "chat"})

    evaluation = evaluation_run(evaluation_id=evaluation.pk)

    assert evaluation.status == EvaluationStatus.SUCCEEDED, evaluation.status_message
    assert evaluation.model_name == "demo-llm"  # the first of /v1/models
    assert evaluation.started_at and evaluation.finished_at
    results = Evaluation.objects.get(pk=evaluation.pk).results
    assert (results["completed"], results["failed"], results["stopped_early"]) == (8, 0, False)
    assert Evaluation.objects.get(pk=evaluation.pk).requests_done == 8
    # The demo server's delays are lower bounds; a busy machine may add a little.
    assert 200 <= results["ttft_ms"]["p50"] <= 350
    assert 25 <= results["itl_ms"]["p50"] <= 50
    assert 410 <= results["e2el_ms"]["p50"] <= 560
    assert len(results["samples_ms"]["e2el"]) == 8


def test_run_is_claimed_once(world, enqueued, fast_server):
    task = running_task(world, port=fast_server.port)
    evaluation = evaluation_create(task=task, user=world.member, parameters=PARAMETERS)
    assert evaluation_run(evaluation_id=evaluation.pk).status == EvaluationStatus.SUCCEEDED
    assert evaluation_run(evaluation_id=evaluation.pk) is None  # a second delivery


def test_run_fails_when_the_task_stopped_before_it_began(world, enqueued, fast_server):
    task = running_task(world, port=fast_server.port)
    evaluation = evaluation_create(task=task, user=world.member, parameters=PARAMETERS)
    Task.objects.filter(pk=task.pk).update(status=Status.STOPPED)
    evaluation = evaluation_run(evaluation_id=evaluation.pk)
    assert evaluation.status == EvaluationStatus.FAILED and evaluation.failure_reason == FailureReason.TASK_NOT_RUNNING
    assert evaluation.status_message == "The task is no longer running."


def test_run_fails_when_no_model_can_be_listed(world, enqueued):
    task = running_task(world, port=free_port())
    evaluation = evaluation_create(task=task, user=world.member, parameters=PARAMETERS)
    evaluation = evaluation_run(evaluation_id=evaluation.pk)
    assert evaluation.status == EvaluationStatus.FAILED
    assert evaluation.failure_reason == FailureReason.NO_MODEL
    assert evaluation.status_message.startswith("Could not list the endpoint's models. ConnectError")


def test_failing_requests_are_counted(world, enqueued):
    with DemoModelProcess("--fail-every", "2") as server:
        task = running_task(world, port=server.port)
        params = {**PARAMETERS, "model_name": "demo-llm", "concurrency": 1}
        evaluation = evaluation_run(evaluation_id=evaluation_create(task=task, user=world.member,
                                                                    parameters=params).pk)
    assert evaluation.status == EvaluationStatus.SUCCEEDED
    assert (evaluation.results["completed"], evaluation.results["failed"]) == (4, 4)
    assert len(evaluation.results["errors"]) == 4


def test_a_run_where_no_request_succeeds_fails(world, enqueued):
    with DemoModelProcess("--fail-every", "1") as server:
        task = running_task(world, port=server.port)
        params = {**PARAMETERS, "model_name": "demo-llm"}
        evaluation = evaluation_run(evaluation_id=evaluation_create(task=task, user=world.member,
                                                                    parameters=params).pk)
    assert evaluation.status == EvaluationStatus.FAILED
    assert evaluation.failure_reason == FailureReason.NO_SUCCESS
    assert evaluation.status_message.startswith("No request succeeded. HTTP 500: The demo model failed")
    assert evaluation.results["failed"] == 8


@pytest.mark.django_db(transaction=True)
def test_a_task_that_stops_mid_way_fails_the_run_and_keeps_what_was_measured(monkeypatch, enqueued):
    from tests.factories import make_world

    world = make_world()
    monkeypatch.setattr(services, "TASK_CHECK_SECONDS", 0.2)
    with DemoModelProcess("--token-delay", "0.05") as server:
        task = running_task(world, port=server.port)
        params = {"max_tokens": 4, "request_count": 500, "concurrency": 2, "model_name": "demo-llm"}
        evaluation = evaluation_create(task=task, user=world.member, parameters=params)

        def stop_the_task_once_requests_flow():
            try:
                # The third request starts only once one has finished (two at a time).
                server.wait_for_requests("/v1/completions", 3, timeout=10)
                Task.objects.filter(pk=task.pk).update(status=Status.STOPPED)
            finally:
                connection.close()

        stopper = threading.Thread(target=stop_the_task_once_requests_flow)
        stopper.start()
        evaluation = evaluation_run(evaluation_id=evaluation.pk)
        stopper.join()

    assert evaluation.status == EvaluationStatus.FAILED
    assert evaluation.failure_reason == FailureReason.TASK_STOPPED
    results = evaluation.results
    assert results["stopped_early"] is True
    assert 0 < results["completed"] < 500 and results["duration_s"] < 5
