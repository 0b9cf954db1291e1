"""The Celery tasks stay thin and safe to run twice: retries for transient errors only, quiet when there is nothing to do."""

import pytest

from deploy_portal.messages import render
from scheduler import tasks
from scheduler.runtimes import _runtimes
from scheduler.runtimes.base import InstanceObservation, Runtime, RuntimeFailure, TransientRuntimeError
from tasks.models import InstanceStatus
from tasks.states import Status

pytestmark = pytest.mark.django_db


class ScriptedRuntime(Runtime):
    """A runtime whose ``apply`` raises what the test says and which records every call."""

    def __init__(self, error=None):
        self.error, self.calls = error, []

    def apply(self, run):
        self.calls.append(("apply", run.task_id))
        if self.error is not None:
            raise self.error

    def observe(self, run, snapshot=None):
        self.calls.append(("observe", run.task_id))
        return [InstanceObservation(index=i.index, status=InstanceStatus.STARTING) for i in run.instances.all()]

    def teardown(self, run):
        self.calls.append(("teardown", run.task_id))

    def workloads(self):
        return []

    def remove_workload(self, workload):
        self.calls.append(("remove", workload))

    def read_log(self, instance, tail=None):
        raise LookupError(instance.pk)

    def open_log(self, instance):
        raise LookupError(instance.pk)

    def log_tail_bytes(self, instance, limit):
        raise LookupError(instance.pk)


@pytest.fixture
def scripted(settings, tmp_path):
    settings.DEPLOY_RUNTIME, settings.LOCAL_RUNTIME_DIR = "local", tmp_path
    key = ("local", str(tmp_path))

    def install(error=None):
        _runtimes[key] = ScriptedRuntime(error)
        return _runtimes[key]

    yield install
    _runtimes.pop(key, None)


def status(task):
    task.refresh_from_db()
    return task.status


def test_deploy_applies_then_observes(scripted, placed):
    runtime = scripted()
    task = placed()
    tasks.deploy_task.apply(args=(task.pk,))
    assert runtime.calls == [("apply", task.pk), ("observe", task.pk)]
    assert status(task) == Status.DEPLOYING


def test_deploy_of_a_task_that_no_longer_deploys_does_nothing(scripted, placed):
    runtime = scripted()
    task = placed(status=Status.STOPPED)
    tasks.deploy_task.apply(args=(task.pk,))
    tasks.deploy_task.apply(args=(987654321,))
    assert runtime.calls == []


def test_a_permanent_refusal_fails_the_task_without_retrying(scripted, placed):
    scripted(RuntimeFailure("Kubernetes refused Pod dp-task-1-0: Unprocessable Entity"))
    task = placed()
    result = tasks.deploy_task.apply(args=(task.pk,))
    assert result.state == "SUCCESS"
    assert status(task) == Status.FAILED and "Unprocessable Entity" in render(task.status_message)


def test_a_transient_error_is_retried_and_past_the_retries_fails_the_task(scripted, placed):
    runtime = scripted(TransientRuntimeError("connection refused"))
    task = placed()
    tasks.deploy_task.apply(args=(task.pk,))  # applied locally, each retry runs at once
    assert runtime.calls == [("apply", task.pk)] * (tasks.MAX_RETRIES + 1)
    assert status(task) == Status.FAILED
    assert "could not be reached to deploy the task: connection refused" in render(task.status_message)


def test_transient_errors_are_retried_by_celery_with_jittered_bounded_backoff():
    for task in (tasks.deploy_task, tasks.teardown_task):
        assert task.autoretry_for == (TransientRuntimeError,)
        assert (task.retry_backoff, task.retry_backoff_max, task.retry_jitter) == (True, 60, True)


def test_teardown_leaves_a_task_that_holds_gpus_again(scripted, placed):
    runtime = scripted()
    holding = placed(status=Status.RUNNING)
    stopped = placed(status=Status.STOPPED)
    tasks.teardown_task.apply(args=(holding.pk,))
    tasks.teardown_task.apply(args=(stopped.pk,))
    assert runtime.calls == [("teardown", stopped.pk)]
    gone = stopped.instances.get()
    assert gone.log_archived and gone.status == InstanceStatus.TERMINATED and gone.finished_at is not None
    assert holding.instances.get().status == InstanceStatus.PENDING


def test_watching_looks_again_less_often_up_to_a_bound():
    intervals = [tasks.WATCH_FIRST_SECONDS]
    for _ in range(10):
        intervals.append(tasks._next_watch(intervals[-1]))
    assert intervals[:3] == [0.5, 0.75, 1.125]
    assert intervals == sorted(intervals) and intervals[-1] == tasks.WATCH_LONGEST_SECONDS
