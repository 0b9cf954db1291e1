"""The pure verdict (ready / failed / neither) and the log fallbacks around the runtimes."""

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.runtimes.base import InstanceObservation
from scheduler.logs import instance_log_text
from scheduler.runtimes.logs import tail_lines, tail_text
from deploy_portal.messages import render
from scheduler.jobs import verdict
from tasks.models import InstanceStatus
from tasks.states import Status

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TWO = [(0, "gpu-00", True), (1, "gpu-01", True)]


def obs(index, status, message="", exists=True):
    return InstanceObservation(index=index, status=status, message=message, exists=exists)


def judge(observations, *, status=Status.DEPLOYING, instances=TWO, age=10, timeout=900):
    return verdict(
        status=status,
        instances=instances,
        observations=observations,
        deploying_since=NOW - timedelta(seconds=age),
        now=NOW,
        timeout_seconds=timeout,
    )


def test_ready_only_when_every_instance_is():
    assert not judge([obs(0, InstanceStatus.READY), obs(1, InstanceStatus.STARTING)]).ready
    assert judge([obs(0, InstanceStatus.READY), obs(1, InstanceStatus.READY)]).ready


def test_a_running_task_does_not_become_ready_again():
    assert not judge([obs(0, InstanceStatus.READY), obs(1, InstanceStatus.READY)], status=Status.RUNNING).ready


def test_a_failed_instance_fails_the_task_naming_it():
    result = judge([obs(0, InstanceStatus.READY), obs(1, InstanceStatus.FAILED, "OOMKilled — raise SKU count.")])
    assert render(result.failure) == "Instance 1 on gpu-01: OOMKilled — raise SKU count."


def test_a_single_instance_failure_reads_as_the_sentence_alone():
    result = judge([obs(0, InstanceStatus.FAILED, "The process exited with code 3.")], instances=[(0, "local", True)])
    assert render(result.failure) == "The process exited with code 3."


@pytest.mark.parametrize("status", [Status.DEPLOYING, Status.RUNNING])
def test_an_applied_instance_that_vanished_fails_the_task(status):
    result = judge([obs(0, InstanceStatus.READY), obs(1, InstanceStatus.PENDING, exists=False)], status=status)
    assert "Instance 1 on gpu-01: The instance vanished from gpu-01" in render(result.failure)


def test_an_instance_not_applied_yet_is_only_waiting():
    result = judge([obs(0, InstanceStatus.PENDING, exists=False)], instances=[(0, "gpu-00", False)])
    assert result.failure == "" and not result.ready


def test_deploy_timeout_fails_with_what_was_awaited():
    result = judge(
        [obs(0, InstanceStatus.READY), obs(1, InstanceStatus.STARTING, "Waiting for the readiness probe.")],
        age=901,
        timeout=900,
    )
    assert render(result.failure).startswith("The task did not become ready within 900 seconds")
    assert render(result.failure).endswith("Instance 1 on gpu-01: Waiting for the readiness probe.")
    # The deploy timeout bounds deploying only.
    assert not judge(
        [obs(0, InstanceStatus.STARTING)], status=Status.RUNNING, instances=[(0, "gpu-00", True)], age=10_000
    ).failure


def test_tail_helpers():
    assert tail_lines("a\nb\nc\n", 2) == "b\nc\n"
    assert tail_lines("a\nb\n", None) == "a\nb\n"
    assert tail_lines("a\n", 0) == ""
    assert tail_text(b"first line\nsecond\n", 10) == "second\n"
    assert tail_text(b"short\n", 10) == "short\n"
    assert tail_text("é\n".encode() * 3, 4) == "é\n"


@pytest.mark.django_db
def test_log_text_falls_back_to_the_archive(placed, settings, tmp_path):
    settings.DEPLOY_RUNTIME = "local"
    settings.LOCAL_RUNTIME_DIR = tmp_path
    task = placed(status=Status.FAILED)
    instance = task.instances.get()
    instance.log_archive, instance.log_archived = "one\ntwo\nthree\n", True
    instance.save()
    assert instance_log_text(instance, tail=2) == "two\nthree\n"
    instance.log_archive, instance.log_archived = "", False
    instance.save()
    assert instance_log_text(instance) == ""  # neither live nor archived: nothing, not an error


@pytest.mark.django_db
def test_the_log_is_read_live_then_from_the_archive(placed, settings, tmp_path):
    import sys

    from scheduler.runtimes import get_runtime
    from tests.live import wait_until

    settings.DEPLOY_RUNTIME = "local"
    settings.LOCAL_RUNTIME_DIR = tmp_path
    task = placed(command=[sys.executable, "-c", "print('warming up'); print('ready')"], endpoint_port=None)
    get_runtime().apply(task.current_run)
    instance = task.instances.get()
    wait_until(lambda: instance_log_text(instance) == "warming up\nready\n")
    get_runtime().archive_logs(task.current_run)
    get_runtime().teardown(task.current_run)
    instance.refresh_from_db()
    assert instance.log_archived and instance_log_text(instance) == "warming up\nready\n"


def test_an_archive_holds_any_bytes_nul_and_invalid_utf8_included():
    """PostgreSQL text cannot hold NUL: one NUL in a crash log made the archive raise DataError and the teardown stop."""
    text = tail_text(b"loading\x00weights \xff\xfe\ndone\n", 1024)
    assert "\x00" not in text and text == "loading\ufffdweights \ufffd\ufffd\ndone\n"


@pytest.mark.django_db(transaction=True)
def test_reconcile_runs_alone_an_overlapping_one_returns_at_once(settings, tmp_path):
    import threading

    from django.db import connections

    from scheduler import jobs

    settings.DEPLOY_RUNTIME, settings.LOCAL_RUNTIME_DIR = "local", tmp_path
    taken, release, answers = threading.Event(), threading.Event(), []

    def hold():
        try:
            with jobs._singleton(jobs.RECONCILE_LOCK_KEY) as alone:
                answers.append(alone)
                taken.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(10)
    try:
        assert jobs.reconcile() is None  # another reconcile holds the lock
    finally:
        release.set()
        thread.join(10)
    assert answers == [True]
    assert jobs.reconcile() == {"observed": [], "reapplied": [], "failed": [], "removed": []}
