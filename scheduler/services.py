"""The scheduler's services: the only way tasks start, stop, queue, get pinned, or fail.

Permission and state are checked on the task as it is under the lock, so a caller may pass a stale
instance. Each service locks as ``scheduling`` says (VC, then task), decides, writes, and enqueues the
runtime's work after commit. A service that frees GPUs or changes a queue ends with that VC's
scheduling pass, inline, under the lock it already holds: the GPUs freed are derived from the task
states written in this same transaction, so the pass sees them at once and a queued task that can
start, starts in the same commit. No second pass is enqueued for it (beat's ``schedule_all`` is the
safety net for what nobody decided).

Force start lives in ``force_start``; ``perform`` runs any operation of the catalogue by its action.
"""

import logging

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from deploy_portal.messages import N_, Sentence
from tasks.access import check_action
from tasks.exceptions import OperationRefused
from tasks.models import InstanceStatus, Task, TaskInstance
from tasks.services import event_record, task_delete, task_transition
from tasks.states import HOLDING, Action, Status

from . import dispatch
from .force_start import task_force_start
from .placement import Demand, never_fits
from .ports import PortBook
from .queues import QueuedTask, insert_arrival
from .reasons import never_fits_sentence, wait_sentence
from .scheduling import lock_clusters, lock_for_decision, run_pass, write_plans
from .selectors import cluster_states, plan_clusters

logger = logging.getLogger(__name__)


def _refuse_never_fits(task, state):
    wait = never_fits(state.machines, Demand(task.sku_count, task.replicas))
    if wait is not None:
        raise OperationRefused(
            _("Task “%(task)s” can never run on %(vc)s: it %(why)s.")
            % {"task": task.name, "vc": state.name, "why": never_fits_sentence(wait).render()}
        )


def task_start(*, task, user):
    """Start ``task``: it deploys at once if its VC's policy lets it start and it fits, else it joins the queue.

    Refused (OperationRefused, nothing changes) when it could never fit the VC, or its fixed external port
    is held by a running task. Returns the task as it now is (``deploying`` or ``queued``).
    """
    with transaction.atomic():
        clusters, task = lock_for_decision(task)
        check_action(task=task, user=user, action=Action.START)
        state = cluster_states(clusters)[task.virtual_cluster_id]
        _refuse_never_fits(task, state)
        ports = PortBook(locked=True)
        wanted = task.external_port if task.expose_port else None
        ports.refuse_if_held(wanted)
        priority = task.priority_class.value if task.priority_class_id else 0  # resolved now, as Kubernetes admits a pod
        if task.priority != priority:
            Task.objects.filter(pk=task.pk).update(priority=priority)
        insert_arrival(state.queue, QueuedTask(
            task.pk, task.name, task.sku_count, task.replicas, False, wanted, task.project_id, priority
        ))
        plan = plan_clusters({state.id: state}, ports, explain=True)[state.id]
        if task.pk not in plan.placements:
            reason = wait_sentence(plan.waits[task.pk])
            task_transition(
                task=task, transition="enqueue", actor=user, operation=Action.START,
                message=Sentence(N_("Started and queued: %(reason)s."), reason=reason),
                queued_at=timezone.now(), started_at=None, endpoint_port=None, status_message="",
            )
        write_plans({state.id: state}, {state.id: plan}, ports, {task.pk: ("deploy", user, Action.START, "")})
    task.refresh_from_db()
    return task


def task_stop(*, task, user=None, message=""):
    """Stop ``task`` (queued, deploying, running or failed); whatever it held is freed and torn down.

    ``user`` None means the system asks. Freed GPUs or a shorter queue are re-examined at once.
    """
    with transaction.atomic():
        clusters, task = lock_for_decision(task)
        if user is not None:
            check_action(task=task, user=user, action=Action.STOP)
        was = task.status
        task_transition(
            task=task, transition="stop", actor=user, operation=Action.STOP, message=message,
            endpoint_port=None, pinned=False, queued_at=None, status_message=message,
        )
        if was in HOLDING:
            dispatch.teardown_after_commit(task.pk, task.current_run_id)
        if was in HOLDING or was == Status.QUEUED:
            run_pass(clusters)
    return task


def _set_pinned(*, task, user, action, pinned, message):
    with transaction.atomic():
        clusters, task = lock_for_decision(task)
        check_action(task=task, user=user, action=action)
        if pinned:
            other = Task.objects.filter(virtual_cluster_id=task.virtual_cluster_id, pinned=True).first()
            if other is not None:
                raise OperationRefused(
                    _("Cannot pin “%(task)s”: “%(other)s” is already pinned in %(vc)s; unpin it first.")
                    % {"task": task.name, "other": other.name, "vc": task.virtual_cluster.name}
                )
        Task.objects.filter(pk=task.pk).update(pinned=pinned)
        task.pinned = pinned
        event_record(task=task, operation=action, actor=user, message=message)
        run_pass(clusters)  # the head of the queue changed: it may start, or others may overtake
    task.refresh_from_db()
    return task


def task_pin(*, task, user):
    """Pin a queued task to the head of its VC's queue (managers; one per VC, the refusal names the pinned one)."""
    return _set_pinned(task=task, user=user, action=Action.PIN, pinned=True, message=Sentence(N_("Pinned to the head of the queue.")))


def task_unpin(*, task, user):
    """Unpin the pinned task: it keeps its place by queue time, and the VC's own policy applies again."""
    return _set_pinned(task=task, user=user, action=Action.UNPIN, pinned=False, message=Sentence(N_("Unpinned.")))


# What the runtime observes comes back through these two.

# Each names the run it reports on: a report about a run that is no longer the task's current one (a slow
# observation of run N landing after stop and start) is ignored, never applied to run N+1.

def _stale(task, run_id, what):
    if run_id is not None and task.current_run_id != run_id:
        logger.info("ignored a late report (%s) about run %s of task %s: its current run is %s",
                    what, run_id, task.pk, task.current_run_id)
        return True
    return False


def task_instances_ready(*, task_id, run_id=None):
    """``deploying`` → ``running`` once every instance of run ``run_id`` is ready. Returns the task if it moved, else None."""
    with transaction.atomic():
        task = Task.objects.select_for_update(of=("self",)).filter(pk=task_id, status=Status.DEPLOYING).first()
        if task is None or _stale(task, run_id, "ready"):
            return None
        statuses = list(TaskInstance.objects.filter(run_id=task.current_run_id).values_list("status", flat=True))
        if len(statuses) < task.replicas or any(s != InstanceStatus.READY for s in statuses):
            return None
        return task_transition(task=task, transition="ready")


def task_fail(*, task_id, reason, run_id=None):
    """Run ``run_id`` of a deploying or running task failed for good: ``failed`` with ``reason``, torn down,
    its GPUs re-offered.

    Quietly returns None when the task no longer holds GPUs (already stopped, killed or failed), or when
    ``run_id`` is no longer its current run.
    """
    vc_id = Task.objects.filter(pk=task_id).values_list("virtual_cluster_id", flat=True).first()
    if vc_id is None:
        return None
    with transaction.atomic():
        clusters = lock_clusters([vc_id])
        task = Task.objects.select_for_update(of=("self",)).filter(pk=task_id, status__in=HOLDING).first()
        if task is None or _stale(task, run_id, "failure"):
            return None
        task_transition(
            task=task, transition="fail", message=reason, endpoint_port=None, status_message=reason,
        )
        dispatch.teardown_after_commit(task.pk, task.current_run_id)
        run_pass(clusters)
    return task


# The service of each operation the catalogue (``tasks.states.OPERATIONS``) does at once; the edges call it by action.
_SERVICES = {
    Action.START: task_start,
    Action.STOP: task_stop,
    Action.PIN: task_pin,
    Action.UNPIN: task_unpin,
    Action.FORCE_START: task_force_start,
    Action.DELETE: task_delete,
}


def perform(action, *, task, user, **options):
    """Do ``action`` (one the catalogue does at once, not through a form) to ``task`` for ``user``.

    ``options`` go to its service (force start: ``expected_victims``, the ids of the preview confirmed).
    """
    return _SERVICES[action](task=task, user=user, **options)
