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
        "env": [{"name": "SHM_SIZE", "value": "8G", "secret": False}],
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


def test_the_safety_net_fails_runs_whose_worker_stopped_beating_or_whose_message_was_lost(world):
    from evaluations.tasks import fail_abandoned_evaluations

    now = timezone.now()
    # At the allowed maximum a run may take days (waves × timeout): its heartbeat, not that bound, says it is alive.
    params = {"request_count": 10_000, "concurrency": 1, "timeout_seconds": 600}

    def make(name, port, **fields):
        return Evaluation.objects.create(task=running_task(world, port=port, name=name), **params, **fields)

    silent = make("a", 31999, status=EvaluationStatus.RUNNING, started_at=now - timedelta(minutes=5),
                  heartbeat_at=now - timedelta(seconds=61))
    beating = make("b", 31998, status=EvaluationStatus.RUNNING, started_at=now - timedelta(hours=5),
                   heartbeat_at=now - timedelta(seconds=20))
    never_sent = make("c", 31997)
    Evaluation.objects.filter(pk=never_sent.pk).update(created_at=now - timedelta(seconds=61))
    # Sent, and queued behind other evaluations for longer than a minute: still waiting its turn, not lost.
    waiting = make("d", 31996, sent_at=now - timedelta(minutes=10))
    Evaluation.objects.filter(pk=waiting.pk).update(created_at=now - timedelta(minutes=10))
    just_made = make("e", 31995)  # its message is being sent right now

    fail_abandoned_evaluations.apply()

    assert dict(Evaluation.objects.values_list("pk", "failure_reason")) == {
        silent.pk: FailureReason.ABANDONED, beating.pk: "", never_sent.pk: FailureReason.ABANDONED,
        waiting.pk: "", just_made.pk: "",
    }


def test_a_sent_run_records_when_it_was_handed_to_the_broker(world, enqueued, django_capture_on_commit_callbacks):
    task = running_task(world, port=31999)
    with django_capture_on_commit_callbacks(execute=True):
        evaluation = evaluation_create(task=task, user=world.member, parameters=PARAMETERS)
    evaluation.refresh_from_db()
    assert enqueued == [evaluation.pk] and evaluation.sent_at is not None


def test_a_run_the_safety_net_ended_is_not_overwritten_when_its_worker_comes_back(world, monkeypatch):
    """The worker was only slow: the run was called abandoned meanwhile, and its late success must not undo that."""
    from evaluations import loadgen
    from evaluations.metrics import RequestRecord

    task = running_task(world, port=31999)
    evaluation = Evaluation.objects.create(task=task, model_name="demo", sent_at=timezone.now(), **PARAMETERS)

    def run_load(spec, *, keep_going, check_every):
        Evaluation.objects.filter(pk=evaluation.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
        assert services.evaluations_fail_abandoned() == [evaluation.pk]
        assert keep_going(3) is False  # the worker's next check sees the run ended and stops the load
        record = RequestRecord(success=True, latency=0.5, ttft=0.1, output_tokens=8)
        return loadgen.LoadResult(records=[record] * 3, duration=1.0, stopped=False)

    monkeypatch.setattr(loadgen, "run_load", run_load)
    evaluation_run(evaluation_id=evaluation.pk)
    evaluation.refresh_from_db()
    assert (evaluation.status, evaluation.failure_reason) == (EvaluationStatus.FAILED, FailureReason.ABANDONED)
    assert evaluation.results == {}


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
