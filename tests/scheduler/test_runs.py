"""Runs: every start is a run with its own instances; reports are bound to the run they were issued for."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from clusters.models import VirtualCluster
from deploy_portal.messages import N_, Sentence, render
from scheduler import jobs
from scheduler.force_start import VictimsChanged, task_force_start, task_force_start_preview
from scheduler.runtimes import _runtimes
from scheduler.runtimes.base import InstanceObservation, Runtime, TransientRuntimeError
from scheduler.services import task_fail, task_instances_ready, task_pin, task_start, task_stop
from tasks.models import InstanceStatus, RunOutcome, Task, TaskInstance, TaskRun
from tasks.services import _lock
from tasks.states import Status

pytestmark = pytest.mark.django_db


def restarted(cluster, **fields):
    """A task started (run 1), stopped, and started again (run 2): (task, run 1, run 2)."""
    task = task_start(task=cluster.task(**fields), user=cluster.owner)
    first = task.current_run
    task_stop(task=task, user=cluster.owner)
    task = task_start(task=task, user=cluster.owner)
    return task, first, task.current_run


def test_every_start_is_a_numbered_run_with_who_when_and_what_it_ran_with(make_cluster):
    cluster = make_cluster(4)
    task, first, second = restarted(cluster, sku_count=2, command=["serve", "--port", "8000"])
    first.refresh_from_db()
    assert (first.number, second.number) == (1, 2)
    assert first.started_by == cluster.owner and first.placed_at is not None and first.ended_at is not None
    assert first.outcome == RunOutcome.STOPPED
    assert first.config["sku_count"] == 2 and first.config["command"] == ["serve", "--port", "8000"]
    assert "value" not in str(first.config["env_names"])  # names only, never values
    assert second.ended_at is None and task.current_run_id == second.pk
    assert list(task.runs.values_list("number", flat=True)) == [2, 1]  # newest first


def test_a_late_failure_of_the_previous_run_does_not_fail_the_current_one(make_cluster):
    cluster = make_cluster(4)
    task, first, second = restarted(cluster)
    assert task_fail(task_id=task.pk, run_id=first.pk, reason=Sentence(N_("failed"))) is None
    task.refresh_from_db()
    assert task.status == Status.DEPLOYING and task.current_run_id == second.pk
    second.refresh_from_db()
    assert second.ended_at is None


def test_a_late_ready_of_the_previous_run_does_not_make_the_current_one_running(make_cluster):
    cluster = make_cluster(4)
    task = task_start(task=cluster.task(), user=cluster.owner)
    first = task.current_run
    first.instances.update(status=InstanceStatus.READY)
    task_stop(task=task, user=cluster.owner)
    task = task_start(task=task, user=cluster.owner)
    assert task_instances_ready(task_id=task.pk, run_id=first.pk) is None
    assert Task.objects.get(pk=task.pk).status == Status.DEPLOYING
    # The current run's own report still moves it.
    task.current_run.instances.update(status=InstanceStatus.READY)
    assert task_instances_ready(task_id=task.pk, run_id=task.current_run_id).status == Status.RUNNING


def test_a_requeued_task_shows_the_current_runs_times_not_the_previous_ones(make_cluster):
    cluster = make_cluster(2)
    task = task_start(task=cluster.task(sku_count=2), user=cluster.owner)
    assert task.started_at is not None
    task_stop(task=task, user=cluster.owner)
    task_start(task=cluster.task(sku_count=2), user=cluster.owner)  # takes the machine
    task = task_start(task=task, user=cluster.owner)
    assert task.status == Status.QUEUED and task.started_at is None and task.queued_at is not None
    assert task.current_run.queued_at is not None and task.current_run.placed_at is None


def test_a_kill_ends_the_victims_run_naming_who_and_for_which_task(make_cluster, django_capture_on_commit_callbacks):
    cluster = make_cluster(2)
    victim = task_start(task=cluster.task(sku_count=2), user=cluster.owner)
    urgent = task_start(task=cluster.task(sku_count=2), user=cluster.owner)
    task_pin(task=urgent, user=cluster.manager)
    task_force_start(task=urgent, user=cluster.manager)
    run = TaskRun.objects.get(pk=victim.current_run_id)
    assert run.outcome == RunOutcome.KILLED and run.killed_by == cluster.manager and run.killed_for_id == urgent.pk
    assert "force-started" in render(run.reason)


def test_the_stop_sends_the_teardown_of_its_own_run(make_cluster, sent, django_capture_on_commit_callbacks):
    cluster = make_cluster(4)
    task = task_start(task=cluster.task(), user=cluster.owner)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        task_stop(task=task, user=cluster.owner)
    assert sent == [("teardown_task", task.pk)]


class Recording(Runtime):
    """A runtime that sees what the test says and records which runs it was asked about."""

    def __init__(self, status=InstanceStatus.READY, error=None):
        self.status, self.error, self.calls = status, error, []

    def apply(self, run):
        self.calls.append(("apply", run.pk))

    def observe(self, run, snapshot=None):
        self.calls.append(("observe", run.pk))
        if self.error:
            raise self.error
        return [InstanceObservation(index=i.index, status=self.status) for i in run.instances.all()]

    def teardown(self, run):
        self.calls.append(("teardown", run.pk))

    def workloads(self):
        return []

    def remove_workload(self, workload):
        pass

    def read_log(self, instance, tail=None):
        raise LookupError(instance.pk)

    def open_log(self, instance):
        raise LookupError(instance.pk)

    def log_tail_bytes(self, instance, limit):
        raise LookupError(instance.pk)


@pytest.fixture
def use_runtime(settings):
    settings.DEPLOY_RUNTIME = "local"
    key = ("local", str(settings.LOCAL_RUNTIME_DIR))
    previous = _runtimes.get(key)

    def install(runtime):
        _runtimes[key] = runtime
        return runtime

    yield install
    if previous is None:
        _runtimes.pop(key, None)
    else:
        _runtimes[key] = previous


def test_an_observation_of_a_run_that_is_no_longer_current_is_ignored(make_cluster, use_runtime):
    cluster = make_cluster(4)
    task, first, second = restarted(cluster)
    runtime = use_runtime(Recording(status=InstanceStatus.FAILED))
    assert jobs.observe_task(task.pk, first.pk) is None
    assert runtime.calls == []  # nothing looked at, nothing written
    assert set(second.instances.values_list("status", flat=True)) == {InstanceStatus.PENDING}
    assert Task.objects.get(pk=task.pk).status == Status.DEPLOYING


def test_a_deploy_message_of_an_earlier_run_applies_nothing(make_cluster, use_runtime):
    cluster = make_cluster(4)
    task, first, second = restarted(cluster)
    runtime = use_runtime(Recording(status=InstanceStatus.STARTING))
    assert jobs.deploy(task.pk, first.pk) is None
    jobs.deploy(task.pk, second.pk)
    assert runtime.calls[0] == ("apply", second.pk)


def test_a_late_teardown_removes_its_own_run_even_when_the_task_holds_again(make_cluster, use_runtime):
    """Stop then start at once: the stop's teardown finds the task holding (run 2) and still removes run 1."""
    cluster = make_cluster(4)
    task, first, second = restarted(cluster)
    runtime = use_runtime(Recording())
    jobs.teardown(task.pk, first.pk)
    assert runtime.calls == [("teardown", first.pk)]
    assert set(first.instances.values_list("status", flat=True)) == {InstanceStatus.TERMINATED}
    assert first.instances.get().log_archived
    jobs.teardown(task.pk, second.pk)  # run 2 has not ended: never torn down by a stray message
    assert runtime.calls == [("teardown", first.pk)]


def test_a_log_that_cannot_be_archived_never_blocks_the_teardown(make_cluster, use_runtime, monkeypatch):
    cluster = make_cluster(4)
    task = task_start(task=cluster.task(), user=cluster.owner)
    run = task.current_run
    task_stop(task=task, user=cluster.owner)
    runtime = use_runtime(Recording())

    def broken(self, run):
        raise ValueError("the log is unreadable")

    monkeypatch.setattr(Recording, "archive_logs", broken)
    jobs.teardown(task.pk, run.pk)
    assert runtime.calls == [("teardown", run.pk)]  # the GPUs and the port are freed all the same
    run.refresh_from_db()
    assert "the log is unreadable" in run.archive_error


def test_the_deploy_timeout_holds_while_the_runtime_cannot_be_reached(make_cluster, use_runtime, settings):
    settings.DEPLOY_TIMEOUT_SECONDS = 0
    cluster = make_cluster(4)
    task = task_start(task=cluster.task(), user=cluster.owner)
    use_runtime(Recording(error=TransientRuntimeError("connection refused")))
    assert jobs.watch(task.pk, task.current_run_id) == Status.FAILED
    task.refresh_from_db()
    assert "did not become ready" in render(task.status_message)
    assert "could not be reached: connection refused" in render(task.status_message)


def test_while_the_runtime_is_away_a_young_deploy_keeps_being_watched(make_cluster, use_runtime):
    cluster = make_cluster(4)
    task = task_start(task=cluster.task(), user=cluster.owner)
    use_runtime(Recording(error=TransientRuntimeError("connection refused")))
    assert jobs.watch(task.pk, task.current_run_id) == Status.DEPLOYING


def test_a_machine_nothing_holds_can_be_deleted_and_its_old_instances_keep_its_name(make_cluster):
    cluster = make_cluster(4)
    task = task_start(task=cluster.task(), user=cluster.owner)
    task_stop(task=task, user=cluster.owner)
    node = cluster.nodes[0]
    node.delete()
    instance = TaskInstance.objects.get(task=task)
    assert instance.node is None and instance.node_name == node.name


@pytest.mark.django_db(transaction=True)
def test_an_edit_locks_the_task_alone_so_it_neither_deadlocks_a_start_nor_hides_its_vc_from_the_pass(make_cluster):
    """A start locks the VC, then the task; an edit that also locked the VC (its ``select_related`` without
    ``of``) took them the other way round: the two deadlocked, and the pass skipped the VC while an edit ran."""
    cluster = make_cluster(4)
    task = cluster.task()
    other_locked = []

    def lock_vc_elsewhere():
        try:
            with transaction.atomic():
                other_locked.append(
                    VirtualCluster.objects.select_for_update(nowait=True).filter(pk=cluster.vc.pk).exists()
                )
        except Exception as exc:  # noqa: BLE001 - the lock not granted is what we look for
            other_locked.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        _lock(task)
        thread = threading.Thread(target=lock_vc_elsewhere)
        thread.start()
        thread.join(10)
    assert other_locked == [True]
    assert connection.vendor == "postgresql"


def test_a_force_start_is_bound_to_the_victims_of_its_preview(make_cluster):
    cluster = make_cluster(2, 2)
    older = task_start(task=cluster.task(sku_count=2), user=cluster.owner)
    newer = task_start(task=cluster.task(sku_count=2), user=cluster.owner)
    urgent = task_start(task=cluster.task(sku_count=2), user=cluster.owner)
    task_pin(task=urgent, user=cluster.manager)
    (seen,) = task_force_start_preview(task=urgent, user=cluster.manager).victims  # the most recently started
    # Meanwhile the world changes: the other task is now the most recently started one.
    other = older if seen.pk == newer.pk else newer
    Task.objects.filter(pk=other.pk).update(started_at=timezone.now() + timedelta(hours=1))
    with pytest.raises(VictimsChanged) as refused:
        task_force_start(task=urgent, user=cluster.manager, expected_victims=[seen.pk])
    assert [v.pk for v in refused.value.victims] == [other.pk]
    assert Task.objects.filter(pk__in=[older.pk, newer.pk], status=Status.DEPLOYING).count() == 2  # nothing killed
    task_force_start(task=urgent, user=cluster.manager, expected_victims=[other.pk])
    assert Task.objects.get(pk=urgent.pk).status == Status.DEPLOYING
    assert Task.objects.get(pk=other.pk).status == Status.KILLED


def test_the_logs_of_the_newest_runs_are_kept_as_the_setting_says(make_cluster, use_runtime, settings):
    settings.LOG_RUNS_KEPT = 1
    cluster = make_cluster(4)
    task = cluster.task()
    runs = []
    use_runtime(Recording())
    for _ in range(3):
        task = task_start(task=task, user=cluster.owner)
        runs.append(task.current_run)
        TaskInstance.objects.filter(run=task.current_run).update(
            log_archive=f"log of run {task.current_run.number}", log_archived=True
        )
        task_stop(task=task, user=cluster.owner)
        jobs.teardown(task.pk, task.current_run_id)
    archives = [TaskInstance.objects.get(run=run).log_archive for run in runs]
    assert archives == ["", "", "log of run 3"]


def test_every_operation_done_at_once_has_its_service():
    """The catalogue decides which operations are done at once; ``perform`` must know a service for each."""
    from scheduler.services import _SERVICES
    from tasks.states import OPERATIONS

    assert set(_SERVICES) == {action for action, operation in OPERATIONS.items() if not operation.form}


def test_a_freed_endpoint_port_is_not_handed_out_again_until_its_teardown_and_a_grace_time(
    make_cluster, use_runtime, settings
):
    settings.NODEPORT_RANGE = (31000, 31002)
    settings.PORT_QUARANTINE_SECONDS = 60
    cluster = make_cluster(4)
    first = task_start(task=cluster.task(), user=cluster.owner)
    old_port = first.endpoint_port
    task_stop(task=first, user=cluster.owner)
    second = task_start(task=cluster.task(), user=cluster.owner)
    assert second.endpoint_port != old_port  # the old URL must not reach another model
    use_runtime(Recording())
    jobs.teardown(first.pk, first.current_run_id)
    third = task_start(task=cluster.task(), user=cluster.owner)
    assert third.endpoint_port not in (old_port, second.endpoint_port)  # still within the grace time
    TaskRun.objects.filter(pk=first.current_run_id).update(torn_down_at=timezone.now() - timedelta(minutes=2))
    task_stop(task=second, user=cluster.owner)
    fourth = task_start(task=cluster.task(), user=cluster.owner)
    assert fourth.endpoint_port == old_port  # torn down and past the grace time: free again


def test_a_fixed_port_its_user_asks_for_again_is_theirs_at_once(make_cluster, settings):
    cluster = make_cluster(4)
    task = task_start(task=cluster.task(external_port=31500), user=cluster.owner)
    task_stop(task=task, user=cluster.owner)
    assert task_start(task=task, user=cluster.owner).endpoint_port == 31500


def test_ports_the_runtime_picked_for_instances_are_never_given_to_an_endpoint(make_cluster, settings):
    settings.NODEPORT_RANGE = (31000, 31002)
    cluster = make_cluster(4)
    task = task_start(task=cluster.task(), user=cluster.owner)
    TaskInstance.objects.filter(run_id=task.current_run_id).update(port=31001)  # as the local runtime records it
    other = task_start(task=cluster.task(), user=cluster.owner)
    assert {task.endpoint_port, other.endpoint_port} == {31000, 31002}



def test_reconcile_reads_every_holding_task_in_queries_that_do_not_grow_with_their_number(make_cluster, use_runtime):
    """A steady world (every run ready and staying so): the pass's queries are the same for 2 tasks and for 12."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cluster = make_cluster(64)
    runtime = use_runtime(Recording())

    def start(count):
        for _ in range(count):
            task = task_start(task=cluster.task(replicas=2), user=cluster.owner)
            jobs.observe_task(task.pk, task.current_run_id)  # ready: running

    def reconcile_queries():
        runtime.calls.clear()
        with CaptureQueriesContext(connection) as captured:
            done = jobs.reconcile()
        assert done["failed"] == [] and done["removed"] == []
        # The runtime was asked about each holding task's current run, once.
        assert sorted(runtime.calls) == sorted(("observe", t.current_run_id) for t in Task.objects.holding())
        return len(captured.captured_queries), len(done["observed"])

    start(2)
    jobs.reconcile()  # the first pass writes what it saw; the next ones see no change
    few = reconcile_queries()
    start(10)
    jobs.reconcile()
    many = reconcile_queries()
    assert Task.objects.filter(status=Status.RUNNING).count() == 12
    assert (few[1], many[1]) == (2, 12)
    assert many[0] == few[0] <= 10, (few, many)
