"""What the Celery tasks do: apply, observe, tear down, reconcile — thin I/O around pure verdicts.

Every job is about one run of a task (``TaskRun``): a deploy applies the run it was sent for, an
observation is of the task's current run and reports with its id, a teardown removes that run's
workloads whatever the task does meanwhile. The runtime reports; ``instances_observed`` writes what it
saw on the run's instance rows (status, restarts, message: the runtime's fields, not the task's state);
``verdict`` decides, as a pure function, whether the run is now ready or failed; the scheduler services
make the transition (``task_instances_ready`` / ``task_fail``, which ignore a report about a run that is
no longer current), tearing down and rescheduling after commit.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Prefetch, prefetch_related_objects
from django.utils import timezone

from deploy_portal.messages import N_, Sentence, joined
from tasks.models import InstanceStatus, Task, TaskInstance, TaskRun
from tasks.states import HOLDING, Status

from . import services
from .instruments import START_APPLY_SECONDS
from .runtimes import get_runtime
from .runtimes.base import RuntimeFailure, TransientRuntimeError
from .runtimes.logs import archive_instance_log

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    ready: bool = False
    failure: Sentence | str = ""


def verdict(*, status, instances, observations, deploying_since, now, timeout_seconds):
    """Whether a holding task is now ready, failed (with the reason in words), or neither.

    ``instances`` are ``(index, node_name, applied)`` triples (``applied``: the runtime created its
    workload once), ``observations`` the runtime's ``InstanceObservation`` list.
    """
    seen = {obs.index: obs for obs in observations}
    several = len(instances) > 1

    def about(index, node, sentence):
        if not several:
            return sentence
        return Sentence(N_("Instance %(index)s on %(node)s: %(sentence)s"), index=index, node=node, sentence=sentence)

    for index, node, applied in instances:
        obs = seen.get(index)
        if obs is not None and obs.failed:
            return Verdict(failure=about(index, node, obs.message))
        if applied and (obs is None or not obs.exists):
            return Verdict(
                failure=about(
                    index,
                    node,
                    Sentence(
                        N_(
                            "The instance vanished from %(node)s (its workload was removed or the machine was lost) — start the task again."
                        ),
                        node=node,
                    ),
                )
            )
    if status != Status.DEPLOYING:
        return Verdict()
    if instances and all(seen.get(index) is not None and seen[index].ready for index, _node, _applied in instances):
        return Verdict(ready=True)
    if deploying_since is not None and now - deploying_since > timedelta(seconds=timeout_seconds):
        waiting = [
            about(index, node, seen[index].message)
            for index, node, _applied in instances
            if seen.get(index) is not None and not seen[index].ready and seen[index].message
        ]
        sentence = Sentence(
            N_(
                "The task did not become ready within %(seconds)s seconds — check the logs, or raise DEPLOY_TIMEOUT_SECONDS for a model that loads slowly."
            ),
            seconds=timeout_seconds,
        )
        return Verdict(failure=joined(sentence, *waiting))
    return Verdict()


def _overdue(task):
    """The timeout sentence when the deploying task is past ``DEPLOY_TIMEOUT_SECONDS``, else None."""
    if task.status != Status.DEPLOYING:
        return None
    # The verdict on a deploy with nothing to observe: only its age can fail it.
    result = verdict(
        status=task.status, instances=[], observations=[], deploying_since=_deploying_since(task),
        now=timezone.now(), timeout_seconds=settings.DEPLOY_TIMEOUT_SECONDS,
    )
    return result.failure or None


def instances_observed(*, run, observations):
    """Write what the runtime saw on the run's instance rows; only the fields that changed."""
    now = timezone.now()
    rows = {instance.index: instance for instance in run.instances.all()}
    for obs in observations:
        row = rows.get(obs.index)
        if row is None:
            continue
        fields = {"status": obs.status, "restarts": obs.restarts, "message": obs.message}
        if obs.address:
            fields["address"] = obs.address
        if obs.ready and row.ready_at is None:
            fields["ready_at"] = now
        if obs.status in (InstanceStatus.FAILED, InstanceStatus.TERMINATED) and row.finished_at is None:
            fields["finished_at"] = now
        changed = {key: value for key, value in fields.items() if getattr(row, key) != value}
        if changed:
            TaskInstance.objects.filter(pk=row.pk).update(**changed)


def _deploying_since(task):
    if task.started_at:
        return task.started_at
    return min((instance.created_at for instance in task.current_run.instances.all()), default=None)


def _runs_loaded(tasks):
    """Each task's current run, knowing its task, with its instances read once (index order) for the verdict, the
    runtime and ``instances_observed``: one query for all of them."""
    runs = []
    for task in tasks:
        if task.current_run is not None:
            task.current_run.task = task
            runs.append(task.current_run)
    prefetch_related_objects(runs, Prefetch("instances", queryset=TaskInstance.objects.order_by("index")))


def _current(task_id, run_id, *, statuses=HOLDING):
    """The task and its current run when it is in ``statuses`` and ``run_id`` (if given) is that run; else (None, None)."""
    task = Task.objects.select_related("virtual_cluster", "current_run").filter(pk=task_id, status__in=statuses).first()
    if task is None or task.current_run is None:
        return None, None
    if run_id is not None and task.current_run_id != run_id:
        logger.info("run %s of task %s is no longer current (%s): nothing to do", run_id, task_id, task.current_run_id)
        return None, None
    _runs_loaded([task])
    return task, task.current_run


def observe_task(task_id, run_id=None, snapshot=None):
    """Observe the current run of a holding task once and act on the verdict, as a report about that run.

    Answers the task's status afterwards, or None when it does not hold GPUs or ``run_id`` is no longer its
    current run (nothing to observe). ``snapshot``: the runtime's ``snapshot()``, when a pass read it once.
    """
    task, run = _current(task_id, run_id)
    if task is None:
        return None
    return _observe(task, run, snapshot)


def _observe(task, run, snapshot):
    """``observe_task`` on a task and run read already (their instances prefetched): no query while nothing changed."""
    # Which instances were applied, read before the runtime is: one applied meanwhile is not "vanished".
    instances = [(i.index, i.node_name, bool(i.handle)) for i in run.instances.all()]
    observations = get_runtime().observe(run, snapshot=snapshot)
    instances_observed(run=run, observations=observations)
    result = verdict(
        status=task.status,
        instances=instances,
        observations=observations,
        deploying_since=_deploying_since(task),
        now=timezone.now(),
        timeout_seconds=settings.DEPLOY_TIMEOUT_SECONDS,
    )
    if result.failure:
        task = services.task_fail(task_id=task.pk, run_id=run.pk, reason=result.failure) or task
    elif result.ready:
        task = services.task_instances_ready(task_id=task.pk, run_id=run.pk) or task
    return task.status


def watch(task_id, run_id=None):
    """One look of the watch at a deploying run: its status afterwards.

    When the runtime cannot be reached, the deploy timeout still holds: a run past it fails, saying so.
    """
    try:
        return observe_task(task_id, run_id)
    except TransientRuntimeError as exc:
        logger.warning("watch: task %s could not be observed now", task_id, exc_info=True)
        task, run = _current(task_id, run_id, statuses=(Status.DEPLOYING,))
        if task is None:
            return None
        overdue = _overdue(task)
        if overdue is None:
            return Status.DEPLOYING
        reason = joined(overdue, Sentence(N_("The runtime could not be reached: %(error)s."), error=str(exc)))
        return (services.task_fail(task_id=task.pk, run_id=run.pk, reason=reason) or task).status


def deploy(task_id, run_id=None):
    """Apply run ``run_id`` of a deploying task, then observe it once; quietly nothing if it no longer deploys it."""
    task, run = _current(task_id, run_id, statuses=(Status.DEPLOYING,))
    if task is None:
        return None
    get_runtime().apply(run)
    if task.started_at is not None:
        START_APPLY_SECONDS.observe(max(0.0, (timezone.now() - task.started_at).total_seconds()))
    return observe_task(task_id, run.pk)


def fail(task_id, reason, run_id=None):
    """Fail a holding task's run for a reason the runtime gave (a refused manifest, an unreachable API)."""
    return services.task_fail(task_id=task_id, run_id=run_id, reason=reason)


def teardown(task_id, run_id=None):
    """Archive the logs of an ended run, then remove its workloads; the task may hold GPUs again with a new run.

    ``run_id`` None (a message sent before runs): the task's latest ended run. The archive never blocks the
    teardown: a log that cannot be archived is said on the run (``archive_error``), and the workloads go anyway.
    """
    runs = TaskRun.objects.select_related("task").filter(task_id=task_id, ended_at__isnull=False)
    run = runs.filter(pk=run_id).first() if run_id is not None else runs.order_by("-number").first()
    if run is None:
        return
    runtime = get_runtime()
    try:
        runtime.archive_logs(run)
    except Exception as exc:  # noqa: BLE001 - the GPUs and the port must be freed whatever the log holds
        logger.exception("teardown: the logs of run %s of task %s could not be archived", run.pk, task_id)
        TaskRun.objects.filter(pk=run.pk).update(archive_error=f"{type(exc).__name__}: {exc}"[:2000])
    runtime.teardown(run)
    # The runtime's last word on instances that were not failed already: they are gone now.
    run.instances.exclude(status=InstanceStatus.FAILED).update(status=InstanceStatus.TERMINATED)
    run.instances.filter(finished_at__isnull=True).update(finished_at=timezone.now())
    # From now on its port's quarantine runs out (scheduler.ports.held_ports).
    TaskRun.objects.filter(pk=run.pk, torn_down_at__isnull=True).update(torn_down_at=timezone.now())
    forget_old_logs(task_id)


def forget_old_logs(task_id):
    """Keep the archived logs of the newest ``LOG_RUNS_KEPT`` ended runs of the task (0: of every run)."""
    if settings.LOG_RUNS_KEPT <= 0:
        return
    ended = TaskRun.objects.filter(task_id=task_id, ended_at__isnull=False).order_by("-number")
    old = ended.values_list("pk", flat=True)[settings.LOG_RUNS_KEPT:]
    TaskInstance.objects.filter(run_id__in=list(old)).exclude(log_archive="").update(log_archive="")


# pg_try_advisory_lock key: one reconcile at a time across every worker and beat.
RECONCILE_LOCK_KEY = 0x6470_7263


def reconcile():
    """Heal drift both ways; answers what it did, for logs and tests (None when another reconcile is running).

    It runs as a singleton (a PostgreSQL advisory lock; an overlapping call returns at once). Holding tasks'
    current runs are observed (a vanished instance fails the run with the reason; a deploy past
    ``DEPLOY_TIMEOUT_SECONDS`` fails with a sentence); a deploying run whose apply never happened (its worker
    died) is applied again, or failed once it is past that timeout too. Then every workload the database does
    not hold — unknown, or of a run that ended — is removed, its log archived first. One task or workload that
    cannot be handled is logged and skipped: the pass goes on with the others (a re-apply the runtime refuses
    for good fails its run with the refusal).
    """
    with _singleton(RECONCILE_LOCK_KEY) as alone:
        if not alone:
            logger.info("reconcile: another one is running")
            return None
        return _reconcile()


class _singleton:
    """A session-level advisory lock, taken without waiting (PostgreSQL; elsewhere always granted)."""

    def __init__(self, key):
        self.key, self.held = key, False

    def __enter__(self):
        if connection.vendor != "postgresql":
            return True
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
            self.held = cursor.fetchone()[0]
        return self.held

    def __exit__(self, *exc):
        if self.held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [self.key])


def _reconcile():
    runtime = get_runtime()
    # The deploys not applied yet, read before the runtime: one applied after this read is re-applied (a no-op),
    # never judged on a snapshot taken before its workloads existed.
    unapplied = set(
        TaskInstance.objects.holding().filter(task__status=Status.DEPLOYING, handle="").values_list("run_id", flat=True)
    )
    # Read the workloads before the database: one created after this read has its row committed already.
    workloads = runtime.workloads()
    snapshot = runtime.snapshot()
    done = {"observed": [], "reapplied": [], "failed": [], "removed": []}
    # Every holding task, its current run and the run's instances in three queries, whatever their number: a
    # run that is ready and stays so costs no query of its own (only a change writes, or moves a state).
    holding = list(Task.objects.holding().order_by("pk").select_related("virtual_cluster", "current_run"))
    _runs_loaded(holding)
    for task in holding:
        run_id = task.current_run_id
        if task.current_run is None:
            continue
        try:
            if run_id in unapplied:
                # Not observed: its apply may be under way in another worker, after the snapshot was read.
                overdue = _overdue(task)
                if overdue is not None:
                    fail(task.pk, overdue, run_id)
                    done["failed"].append(task.pk)
                else:
                    deploy(task.pk, run_id)
                    done["reapplied"].append(task.pk)
            else:
                _observe(task, task.current_run, snapshot)
                done["observed"].append(task.pk)
        except TransientRuntimeError:
            logger.warning("reconcile: task %s could not be observed now", task.pk, exc_info=True)
        except RuntimeFailure as exc:
            fail(task.pk, exc.sentence, run_id)
            done["failed"].append(task.pk)
        except Exception:  # noqa: BLE001 - one task's surprise must not stop the healing of every other
            logger.exception("reconcile: task %s could not be handled", task.pk)
    # Read again after the observations: a run failed above no longer holds its workloads.
    holding_instances = set(TaskInstance.objects.holding().values_list("pk", flat=True))
    holding_runs, holding_tasks = set(), set()
    for task_id, run_id in Task.objects.holding().values_list("pk", "current_run_id"):
        holding_tasks.add(task_id)
        holding_runs.add(run_id)
    for workload in workloads:
        if workload.instance_id is not None:
            keep = workload.instance_id in holding_instances
        elif workload.run_id is not None:
            keep = workload.run_id in holding_runs
        else:  # a service labelled before runs: the task's
            keep = workload.task_id in holding_tasks
        if keep:
            continue
        try:
            instance = TaskInstance.objects.filter(pk=workload.instance_id, log_archived=False).first()
            if instance is not None:
                try:
                    archive_instance_log(runtime, instance)
                except Exception:  # noqa: BLE001 - never keep a workload for its log's sake
                    logger.exception("reconcile: the log of instance %s could not be archived", instance.pk)
            runtime.remove_workload(workload)
            done["removed"].append(workload.handle)
        except Exception:  # noqa: BLE001 - the next pass tries again; the other workloads go now
            logger.exception("reconcile: workload %s could not be removed", workload.handle)
    return done
