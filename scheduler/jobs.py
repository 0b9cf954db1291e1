"""What the Celery tasks do: apply, observe, tear down, reconcile — thin I/O around pure verdicts.

The runtime reports; ``instances_observed`` writes what it saw on the instance rows (status,
restarts, message: the runtime's fields, not the task's state); ``verdict`` decides, as a pure
function, whether the task is now ready or failed; the scheduler services make the transition
(``task_instances_ready`` / ``task_fail``), which tears down and reschedules after commit.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from deploy_portal.messages import N_, Sentence, joined
from tasks.models import InstanceStatus, Task, TaskInstance
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


def _overdue(task_id):
    """The timeout sentence when the deploying task is past ``DEPLOY_TIMEOUT_SECONDS``, else None."""
    task = Task.objects.filter(pk=task_id, status=Status.DEPLOYING).first()
    if task is None:
        return None
    # The verdict on a deploy with nothing to observe: only its age can fail it.
    result = verdict(
        status=task.status, instances=[], observations=[], deploying_since=_deploying_since(task),
        now=timezone.now(), timeout_seconds=settings.DEPLOY_TIMEOUT_SECONDS,
    )
    return result.failure or None


def instances_observed(*, task, observations):
    """Write what the runtime saw on the instance rows; only the fields that changed."""
    now = timezone.now()
    rows = {instance.index: instance for instance in task.instances.all()}
    for obs in observations:
        row = rows.get(obs.index)
        if row is None:
            continue
        fields = {"status": obs.status, "restarts": obs.restarts, "message": obs.message}
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
    return task.instances.aggregate(first=Min("created_at"))["first"]


def _holding(task_id):
    return (
        Task.objects.select_related("virtual_cluster")
        .filter(pk=task_id, status__in=HOLDING)
        .first()
    )


def observe_task(task_id, snapshot=None):
    """Observe a holding task once and act on the verdict.

    Answers the task's status afterwards, or None when it does not hold GPUs (nothing to observe).
    ``snapshot``: the runtime's ``snapshot()``, when a pass over many tasks read it once.
    """
    task = _holding(task_id)
    if task is None:
        return None
    # Which instances were applied, read before the runtime is: one applied meanwhile is not "vanished".
    instances = [(i.index, i.node_name, bool(i.handle)) for i in task.instances.order_by("index")]
    observations = get_runtime().observe(task, snapshot=snapshot)
    instances_observed(task=task, observations=observations)
    result = verdict(
        status=task.status,
        instances=instances,
        observations=observations,
        deploying_since=_deploying_since(task),
        now=timezone.now(),
        timeout_seconds=settings.DEPLOY_TIMEOUT_SECONDS,
    )
    if result.failure:
        task = services.task_fail(task_id=task.pk, reason=result.failure) or task
    elif result.ready:
        task = services.task_instances_ready(task_id=task.pk) or task
    return task.status


def deploy(task_id):
    """Apply a deploying task's placements, then observe it once; quietly nothing if it no longer deploys."""
    task = Task.objects.select_related("virtual_cluster").filter(pk=task_id, status=Status.DEPLOYING).first()
    if task is None:
        return None
    get_runtime().apply(task)
    if task.started_at is not None:
        START_APPLY_SECONDS.observe(max(0.0, (timezone.now() - task.started_at).total_seconds()))
    return observe_task(task_id)


def fail(task_id, reason):
    """Fail a holding task for a reason the runtime gave (a refused manifest, an unreachable API)."""
    return services.task_fail(task_id=task_id, reason=reason)


def teardown(task_id):
    """Archive the logs of a task that no longer holds GPUs, then remove its workloads.

    A task that holds GPUs again (started anew meanwhile) is left alone: its new workloads are
    live, and stale ones of the earlier run are removed by ``reconcile``.
    """
    task = Task.objects.filter(pk=task_id).first()
    if task is None or task.status in HOLDING:
        return
    runtime = get_runtime()
    runtime.archive_logs(task)
    runtime.teardown(task)
    # The runtime's last word on instances that were not failed already: they are gone now.
    task.instances.exclude(status=InstanceStatus.FAILED).update(status=InstanceStatus.TERMINATED)
    task.instances.filter(finished_at__isnull=True).update(finished_at=timezone.now())


def reconcile():
    """Heal drift both ways; answers what it did, for logs and tests.

    Holding tasks are observed (a vanished instance fails its task with the reason; a deploy past
    ``DEPLOY_TIMEOUT_SECONDS`` fails with a sentence); a deploying task whose apply never happened
    (its worker died) is applied again, or failed once it is past that timeout too. Then every workload the
    database does not hold — unknown, or of a task that no longer holds GPUs — is removed, its log
    archived first. One task or workload that cannot be handled is logged and skipped: the pass goes
    on with the others (a re-apply the runtime refuses for good fails its task with the refusal).
    """
    runtime = get_runtime()
    # The deploys not applied yet, read before the runtime: one applied after this read is re-applied (a no-op),
    # never judged on a snapshot taken before its workloads existed.
    unapplied = set(
        TaskInstance.objects.filter(task__status=Status.DEPLOYING, handle="").values_list("task_id", flat=True)
    )
    # Read the workloads before the database: one created after this read has its row committed already.
    workloads = runtime.workloads()
    snapshot = runtime.snapshot()
    done = {"observed": [], "reapplied": [], "failed": [], "removed": []}
    for task_id in Task.objects.holding().order_by("pk").values_list("pk", flat=True):
        try:
            if task_id in unapplied:
                # Not observed: its apply may be under way in another worker, after the snapshot was read.
                overdue = _overdue(task_id)
                if overdue is not None:
                    fail(task_id, overdue)
                    done["failed"].append(task_id)
                else:
                    deploy(task_id)
                    done["reapplied"].append(task_id)
            else:
                observe_task(task_id, snapshot=snapshot)
                done["observed"].append(task_id)
        except TransientRuntimeError:
            logger.warning("reconcile: task %s could not be observed now", task_id, exc_info=True)
        except RuntimeFailure as exc:
            fail(task_id, exc.sentence)
            done["failed"].append(task_id)
        except Exception:  # noqa: BLE001 - one task's surprise must not stop the healing of every other
            logger.exception("reconcile: task %s could not be handled", task_id)
    holding_instances = set(TaskInstance.objects.holding().values_list("pk", flat=True))
    holding_tasks = set(Task.objects.holding().values_list("pk", flat=True))
    for workload in workloads:
        if workload.instance_id is None:
            keep = workload.task_id in holding_tasks
        else:
            keep = workload.instance_id in holding_instances
        if keep:
            continue
        try:
            instance = TaskInstance.objects.filter(pk=workload.instance_id, log_archived=False).first()
            if instance is not None:
                archive_instance_log(runtime, instance)
            runtime.remove_workload(workload)
            done["removed"].append(workload.handle)
        except Exception:  # noqa: BLE001 - the next pass tries again; the other workloads go now
            logger.exception("reconcile: workload %s could not be removed", workload.handle)
    return done
