"""The scheduler's services: the only way tasks start, stop, queue, get pinned, force-started or killed.

Permission and state are checked on the task as it is under the lock, so a caller may pass a
stale instance. Every decision that changes what holds GPUs of a VC locks that VC's row first
(``select_for_update``; several VCs in id order), then task rows, then reads, decides with the pure
code (``queues``, ``victims``) and writes in the same transaction. Work for the runtime is enqueued
after commit (``dispatch``). Web processes and Celery workers deciding at once therefore never
over-allocate a machine. Every service that changes a queue ends with the VC's scheduling pass, so
a queued task that can start, starts at once.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mass_mail
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import VirtualCluster
from deploy_portal.sentences import N_, Sentence
from tasks.access import check_action
from tasks.exceptions import OperationRefused
from tasks.models import InstanceStatus, Task, TaskInstance
from tasks.services import event_record, task_transition
from tasks.states import HOLDING, Action, Status

from . import dispatch
from .placement import Demand, never_fits, never_fits_text
from .queues import QueuedTask
from .selectors import CLUSTER_FIELDS, cluster_states, held_ports, plan_cluster, planned_ports
from .victims import Holder, choose_victims

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key serialising the choice of endpoint ports, which are shared by every VC.
PORT_LOCK_KEY = 0x6470_7274


@dataclass(frozen=True)
class ForceStartPreview:
    """What a force start would do now: ``victims`` (tasks, most recently started first) are killed if ``fits``."""

    fits: bool
    victims: list
    reason: str


# --- locking and the pass ----------------------------------------------------------------------------

def _lock_clusters(ids, *, skip_locked=False):
    """Lock the VC rows (in id order, so lockers of several never deadlock) and read them; ``ids=None``: all."""
    rows = VirtualCluster.objects.select_for_update(skip_locked=skip_locked).order_by("pk")
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    return list(rows.values(*CLUSTER_FIELDS))


def _lock_for_decision(task):
    """Lock the task's VC row, then the task's row (the lock order), and return both as they now are."""
    vc_id = Task.objects.filter(pk=task.pk).values_list("virtual_cluster_id", flat=True).get()
    clusters = _lock_clusters([vc_id])
    task = Task.objects.select_for_update(of=("self",)).select_related("virtual_cluster").get(pk=task.pk)
    if task.virtual_cluster_id != vc_id:  # moved to another VC between the two reads (an edit): rare
        raise OperationRefused(_("Task “%(task)s” changed while this was decided; try again.") % {"task": task.name})
    return clusters, task


class _Ports:
    """Endpoint ports, read under a transaction-wide lock so no two VCs' decisions pick the same one.

    Within one pass, a fixed port a VC's plan gives out is ``planned``: the next VCs' plans see it
    as taken (two queued tasks of different VCs may ask for the same port), until ``_place`` reserves it.
    """

    def __init__(self):
        self._used = None
        self._planned = set()

    def lock(self):
        """Take the port lock (held to the end of the transaction) and read the held ports, once."""
        if self._used is None:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PORT_LOCK_KEY])
            self._used = held_ports()
        return self

    @property
    def used(self):
        return self.lock()._used

    def release(self, port):
        """A port freed in this transaction (a killed task's): others may take it now."""
        self.used.discard(port)

    def for_queue(self, queue):
        return self.used | self._planned if any(t.external_port is not None for t in queue) else frozenset()

    def plan(self, queue, plan):
        """Remember the fixed ports ``plan`` gives out, for the plans after it."""
        self._planned.update(planned_ports(queue, plan))

    def reserve(self, wanted):
        """Claim ``wanted`` (a fixed external port) or the lowest free one of ``NODEPORT_RANGE``."""
        if wanted is not None:
            if wanted in self.used:
                raise OperationRefused(_("The external port %(port)s is already used by a running task.") % {"port": wanted})
            self.used.add(wanted)
            return wanted
        low, high = settings.NODEPORT_RANGE
        port = next((p for p in range(low, high + 1) if p not in self.used), None)
        if port is None:
            raise OperationRefused(_("No free port is left in %(low)s–%(high)s.") % {"low": low, "high": high})
        self.used.add(port)
        return port


def _place(placements, ports, how=None):
    """Write placements {task id: (ClusterState, machine ids)}: instances, transitions, deploy after commit.

    ``how`` maps a task id to (transition, actor, operation, message); the default is the scheduler's "place".
    """
    if not placements:
        return []
    how = how or {}
    tasks = Task.objects.in_bulk(list(placements))
    taken = defaultdict(set)
    touched = {node_id for _state, node_ids in placements.values() for node_id in node_ids}
    for node_id, indices in TaskInstance.objects.holding().filter(node_id__in=touched).values_list("node_id", "gpu_indices"):
        taken[node_id].update(indices)
    TaskInstance.objects.filter(task_id__in=list(placements)).delete()  # a previous run's instances
    for task_id in placements:  # fixed ports first, so a picked one never takes them
        if tasks[task_id].expose_port and tasks[task_id].external_port is not None:
            ports.reserve(tasks[task_id].external_port)
    now = timezone.now()
    instances = []
    for task_id, (state, node_ids) in placements.items():
        task = tasks[task_id]
        transition, actor, operation, message = how.get(task_id, ("place", None, None, ""))
        port = None
        if task.expose_port:
            port = task.external_port if task.external_port is not None else ports.reserve(None)
        task_transition(
            task=task, transition=transition, actor=actor, operation=operation, message=message,
            started_at=now, endpoint_port=port, pinned=False, queued_at=None, status_message="",
        )
        gpus = task.sku_count * state.sku_gpus
        for index, node_id in enumerate(node_ids):
            info = state.machine_info[node_id]
            free = [i for i in range(info["capacity"] * state.sku_gpus) if i not in taken[node_id]][:gpus]
            taken[node_id].update(free)
            instances.append(TaskInstance(
                task=task, index=index, node_id=node_id, node_name=info["name"],
                gpu_type=info["gpu_type"] or state.gpu_type, sku_count=task.sku_count, gpu_count=gpus,
                gpu_indices=free,
            ))
        dispatch.deploy_after_commit(task_id)
    TaskInstance.objects.bulk_create(instances)
    return list(placements)


def _drop_hopeless(state):
    """Stop the queued tasks that could never fit the VC as its machines now are, with the reason.

    SPEC refuses such a task at start rather than queue it forever; one queued before its machines were
    removed or shrunk leaves the queue the same way, so a strict queue is never stalled behind it.
    """
    verdicts, hopeless = {}, {}
    for queued in state.queue:
        if queued.demand not in verdicts:
            verdicts[queued.demand] = never_fits(state.machines, queued.demand)
        if verdicts[queued.demand] is not None:
            hopeless[queued.id] = verdicts[queued.demand]
    if not hopeless:
        return
    for task in Task.objects.select_for_update(of=("self",)).filter(pk__in=list(hopeless)).order_by("pk"):
        message = Sentence(
            N_("Taken out of the queue: it can never run on %(vc)s as its machines now are — it %(why)s."),
            vc=state.name, why=never_fits_text(hopeless[task.pk]),
        )
        task_transition(
            task=task, transition="stop", message=message, pinned=False, queued_at=None, status_message=message,
        )
    state.queue = [queued for queued in state.queue if queued.id not in hopeless]


def _run_pass(clusters, ports=None):
    """Decide and write every locked VC in ``clusters``; returns the ids placed."""
    ports = ports or _Ports()
    placements = {}
    for state in cluster_states(clusters).values():
        _drop_hopeless(state)
        plan = plan_cluster(state, ports=ports.for_queue(state.queue))
        ports.plan(state.queue, plan)
        for task_id, node_ids in plan.placements.items():
            placements[task_id] = (state, node_ids)
    return _place(placements, ports)


@transaction.atomic
def schedule_virtual_cluster(*, virtual_cluster_id):
    """The scheduling pass of one VC: start every queued task its policy lets start now. Returns the ids placed."""
    return _run_pass(_lock_clusters([virtual_cluster_id]))


@transaction.atomic
def schedule_all(*, virtual_cluster_ids=None):
    """The pass over every VC (or those given) in one transaction, with a fixed number of reads.

    A VC whose row another transaction holds is skipped: that transaction is deciding it right now,
    and every deciding service ends with the pass. Returns the ids placed.
    """
    return _run_pass(_lock_clusters(virtual_cluster_ids, skip_locked=True))


def node_changed(*, node):
    """A machine was added, changed, cordoned or uncordoned: re-examine its VC's queue now."""
    return schedule_virtual_cluster(virtual_cluster_id=node.virtual_cluster_id)


# --- user operations ---------------------------------------------------------------------------------

def _refuse_never_fits(task, state):
    wait = never_fits(state.machines, Demand(task.sku_count, task.replicas))
    if wait is not None:
        raise OperationRefused(
            _("Task “%(task)s” can never run on %(vc)s: it %(why)s.")
            % {"task": task.name, "vc": state.name, "why": never_fits_text(wait)}
        )


def task_start(*, task, user):
    """Start ``task``: it deploys at once if its VC's policy lets it start and it fits, else it joins the queue.

    Refused (OperationRefused, nothing changes) when it could never fit the VC, or its fixed external port
    is held by a running task. Returns the task as it now is (``deploying`` or ``queued``).
    """
    with transaction.atomic():
        clusters, task = _lock_for_decision(task)
        check_action(task=task, user=user, action=Action.START)
        state = cluster_states(clusters)[task.virtual_cluster_id]
        _refuse_never_fits(task, state)
        ports = _Ports()
        wanted = task.external_port if task.expose_port else None
        if wanted is not None and wanted in ports.used:
            raise OperationRefused(_("The external port %(port)s is already used by a running task.") % {"port": wanted})
        state.queue.append(QueuedTask(task.pk, task.name, task.sku_count, task.replicas, False, wanted))
        plan = plan_cluster(state, explain=True, ports=ports.for_queue(state.queue))
        if task.pk not in plan.placements:
            reason = plan.waits[task.pk].sentence()
            task_transition(
                task=task, transition="enqueue", actor=user, operation=Action.START,
                message=Sentence(N_("Started and queued: %(reason)s."), reason=reason),
                queued_at=timezone.now(), status_message="",
            )
        placements = {task_id: (state, node_ids) for task_id, node_ids in plan.placements.items()}
        _place(placements, ports, {task.pk: ("deploy", user, Action.START, "")})
    task.refresh_from_db()
    return task


def task_stop(*, task, user=None, message=""):
    """Stop ``task`` (queued, deploying, running or failed); whatever it held is freed and torn down.

    ``user`` None means the system asks. Freed GPUs or a shorter queue are re-examined at once.
    """
    with transaction.atomic():
        clusters, task = _lock_for_decision(task)
        if user is not None:
            check_action(task=task, user=user, action=Action.STOP)
        was = task.status
        task_transition(
            task=task, transition="stop", actor=user, operation=Action.STOP, message=message,
            endpoint_port=None, pinned=False, queued_at=None, status_message=message,
        )
        if was in HOLDING:
            dispatch.teardown_after_commit(task.pk)
        if was in HOLDING or was == Status.QUEUED:
            dispatch.schedule_after_commit(task.virtual_cluster_id)
            _run_pass(clusters)
    return task


def _set_pinned(*, task, user, action, pinned, message):
    with transaction.atomic():
        clusters, task = _lock_for_decision(task)
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
        _run_pass(clusters)  # the head of the queue changed: it may start, or others may overtake
    task.refresh_from_db()
    return task


def task_pin(*, task, user):
    """Pin a queued task to the head of its VC's queue (managers; one per VC, the refusal names the pinned one)."""
    return _set_pinned(task=task, user=user, action=Action.PIN, pinned=True, message=Sentence(N_("Pinned to the head of the queue.")))


def task_unpin(*, task, user):
    """Unpin the pinned task: it keeps its place by queue time, and the VC's own policy applies again."""
    return _set_pinned(task=task, user=user, action=Action.UNPIN, pinned=False, message=Sentence(N_("Unpinned.")))


# --- force start -------------------------------------------------------------------------------------

def _victim_choice(state, task):
    holders = defaultdict(list)
    started = {}
    rows = TaskInstance.objects.holding().filter(task__virtual_cluster_id=state.id).values_list(
        "task_id", "node_id", "sku_count", "task__started_at"
    )
    for task_id, node_id, skus, started_at in rows:
        holders[task_id].append((node_id, skus))
        started[task_id] = started_at
    return choose_victims(
        machines=state.machines,
        holders=[Holder(task_id, started[task_id], tuple(instances)) for task_id, instances in holders.items()],
        demand=Demand(task.sku_count, task.replicas),
    )


def _cannot_fit(task, choice):
    return _("Task “%(task)s” cannot be force-started: even with every task of its virtual cluster killed, it %(why)s.") % {
        "task": task.name, "why": never_fits_text(choice.wait),
    }


def _port_clash(task, victims):
    """Why ``task`` cannot take its fixed external port even once ``victims`` are killed, else None."""
    if not task.expose_port or task.external_port is None:
        return None
    holder = (
        Task.objects.holding().filter(endpoint_port=task.external_port).exclude(pk__in=list(victims))
        .values_list("name", flat=True).first()
    )
    if holder is None:
        return None
    return _(
        "Task “%(task)s” cannot be force-started: its external port %(port)s is used by “%(other)s”, "
        "which a force start does not kill; stop that task or give this one another port."
    ) % {"task": task.name, "port": task.external_port, "other": holder}


def _victim_list(ids, *, lock=False):
    rows = Task.objects.select_related("owner")
    if lock:
        rows = rows.select_for_update(of=("self",))
    found = rows.in_bulk(list(ids))
    return [found[task_id] for task_id in ids]


def task_force_start_preview(*, task, user):
    """What ``task_force_start`` would do now: whether it fits, and the tasks it would kill."""
    task = Task.objects.select_related("virtual_cluster").get(pk=task.pk)
    check_action(task=task, user=user, action=Action.FORCE_START)
    clusters = VirtualCluster.objects.filter(pk=task.virtual_cluster_id).values(*CLUSTER_FIELDS)
    choice = _victim_choice(cluster_states(clusters, with_queue=False)[task.virtual_cluster_id], task)
    if not choice.fits:
        return ForceStartPreview(fits=False, victims=[], reason=_cannot_fit(task, choice))
    clash = _port_clash(task, choice.victims)
    if clash is not None:
        return ForceStartPreview(fits=False, victims=[], reason=clash)
    victims = _victim_list(choice.victims)
    if not victims:
        reason = _("It fits now; no task has to be killed.")
    else:
        reason = _("These tasks will be killed: %(tasks)s.") % {"tasks": ", ".join(f"“{v.name}”" for v in victims)}
    return ForceStartPreview(fits=True, victims=victims, reason=reason)


def _mail_victims(victims, task, user):
    messages = []
    for victim in victims:
        if victim.owner.email:
            subject = _("Your task “%(task)s” was killed") % {"task": victim.name}
            body = _(
                "Your task “%(task)s” on %(vc)s was killed to make room for “%(forced)s”, force-started by %(manager)s.\n"
                "Start it again when you are ready; it will queue until GPUs are free."
            ) % {"task": victim.name, "vc": task.virtual_cluster.name, "forced": task.name, "manager": user.get_username()}
            messages.append((subject, body, None, [victim.owner.email]))

    def send():
        try:
            send_mass_mail(messages)
        except Exception:  # mail is a courtesy: a broken mail server must not undo the force start
            logger.exception("Could not mail the owners of the tasks killed for task %s", task.pk)

    if messages:
        transaction.on_commit(send)


def task_force_start(*, task, user):
    """Start the pinned ``task`` now, killing the fewest (then the most recently started) tasks of its VC.

    Refused, with nothing killed, when it could not fit even on the empty VC. Each victim becomes
    ``killed`` with an event naming ``task`` and ``user``, and its owner is mailed after commit.
    """
    with transaction.atomic():
        clusters, task = _lock_for_decision(task)
        check_action(task=task, user=user, action=Action.FORCE_START)
        state = cluster_states(clusters)[task.virtual_cluster_id]
        choice = _victim_choice(state, task)
        if not choice.fits:
            raise OperationRefused(_cannot_fit(task, choice))
        ports = _Ports().lock()  # before the check: no other decision hands out a port until this one commits
        clash = _port_clash(task, choice.victims)
        if clash is not None:
            raise OperationRefused(clash)
        victims = _victim_list(choice.victims, lock=True)
        why = Sentence(
            N_("Killed to make room for “%(task)s”, force-started by %(manager)s."),
            task=task.name, manager=user.get_username(),
        )
        for victim in victims:
            ports.release(victim.endpoint_port)
            task_transition(
                task=victim, transition="kill", actor=user, operation="kill", message=why,
                endpoint_port=None, status_message=why,
            )
            dispatch.teardown_after_commit(victim.pk)
        _mail_victims(victims, task, user)
        message = Sentence(N_("Force-started; killed: %(tasks)s."), tasks=", ".join(v.name for v in victims) or "—")
        _place({task.pk: (state, list(choice.placement))}, ports, {task.pk: ("place", user, Action.FORCE_START, message)})
        if victims:
            dispatch.schedule_after_commit(task.virtual_cluster_id)
            _run_pass(clusters, ports)  # a victim may have freed more than the forced task needed
    task.refresh_from_db()
    return task


# --- what the runtime observes -----------------------------------------------------------------------

def task_instances_ready(*, task_id):
    """``deploying`` → ``running`` once every instance is ready. Returns the task if it moved, else None."""
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(pk=task_id, status=Status.DEPLOYING).first()
        if task is None:
            return None
        statuses = list(task.instances.values_list("status", flat=True))
        if len(statuses) < task.replicas or any(s != InstanceStatus.READY for s in statuses):
            return None
        return task_transition(task=task, transition="ready")


def task_fail(*, task_id, reason):
    """A deploying or running task failed for good: ``failed`` with ``reason``, torn down, its GPUs re-offered.

    Quietly returns None when the task no longer holds GPUs (already stopped, killed or failed).
    """
    vc_id = Task.objects.filter(pk=task_id).values_list("virtual_cluster_id", flat=True).first()
    if vc_id is None:
        return None
    with transaction.atomic():
        clusters = _lock_clusters([vc_id])
        task = Task.objects.select_for_update().filter(pk=task_id, status__in=HOLDING).first()
        if task is None:
            return None
        task_transition(
            task=task, transition="fail", message=reason, endpoint_port=None, status_message=reason,
        )
        dispatch.teardown_after_commit(task.pk)
        dispatch.schedule_after_commit(vc_id)
        _run_pass(clusters)
    return task
