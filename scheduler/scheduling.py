"""The scheduling pass: lock the VCs, read them, decide with the pure code, write the placements.

Every decision that changes what holds GPUs of a VC locks that VC's row first (``select_for_update``;
several VCs in id order, so lockers of several never deadlock), then task rows (the lock order), then
reads, decides (``queues``, ``victims``) and writes in the same transaction. Work for the runtime is
enqueued after commit (``dispatch``). Web processes and Celery workers deciding at once therefore never
over-allocate a machine.
"""

from collections import defaultdict
from operator import attrgetter

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import VirtualCluster
from deploy_portal.messages import N_, Sentence
from tasks.exceptions import OperationRefused
from tasks.models import Task, TaskInstance, TaskRun
from tasks.services import task_transition

from . import dispatch, notices
from .instruments import SCHEDULING_PASS_SECONDS
from .placement import Capacity, Demand
from .ports import PortBook
from .reasons import never_fits_sentence
from .selectors import CLUSTER_FIELDS, cluster_states, plan_clusters


def lock_clusters(ids, *, skip_locked=False):
    """Lock the VC rows (in id order) and read them; ``ids=None``: all."""
    rows = VirtualCluster.objects.select_for_update(skip_locked=skip_locked, of=("self",)).order_by("pk")
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    return list(rows.values(*CLUSTER_FIELDS))


def lock_for_decision(task):
    """Lock the task's VC row, then the task's row (the lock order), and return both as they now are."""
    vc_id = Task.objects.filter(pk=task.pk).values_list("virtual_cluster_id", flat=True).get()
    clusters = lock_clusters([vc_id])
    task = Task.objects.select_for_update(of=("self",)).select_related("virtual_cluster").get(pk=task.pk)
    if task.virtual_cluster_id != vc_id:  # moved to another VC between the two reads (an edit): rare
        raise OperationRefused(_("Task “%(task)s” changed while this was decided; try again.") % {"task": task.name})
    return clusters, task


def write_placements(placements, ports, how=None):
    """Write placements {task id: (ClusterState, machine ids)}: transitions, the instances of each task's current
    run (those of earlier runs stay, with their logs), and the deploy of that run after commit.

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
        TaskRun.objects.filter(pk=task.current_run_id).update(endpoint_port=port)
        gpus = task.sku_count * state.sku_gpus
        for index, node_id in enumerate(node_ids):
            info = state.machine_info[node_id]
            free = [i for i in range(info["capacity"] * state.sku_gpus) if i not in taken[node_id]][:gpus]
            taken[node_id].update(free)
            instances.append(TaskInstance(
                task=task, run_id=task.current_run_id, index=index, node_id=node_id, node_name=info["name"],
                gpu_type=info["gpu_type"] or state.gpu_type, sku_count=task.sku_count, gpu_count=gpus,
                gpu_indices=free,
            ))
        dispatch.deploy_after_commit(task_id, task.current_run_id)
    TaskInstance.objects.bulk_create(instances)
    return list(placements)


SHAPE = attrgetter("sku_count", "replicas")  # a queued task's Demand, as a tuple in Demand's field order


def drop_hopeless(state):
    """Stop the queued tasks that could never fit the VC as its machines now are, with the reason.

    SPEC refuses such a task at start rather than queue it forever; one queued before its machines were
    removed or shrunk leaves the queue the same way, so a strict queue is never stalled behind it.
    """
    capacity = Capacity(state.machines)
    # Each shape judged once (a queue of 100,000 has a handful); the tasks are gone through only where some shape
    # can never fit, which is rare.
    verdicts = {shape: capacity.never_fits(Demand(*shape)) for shape in set(map(SHAPE, state.queue))}
    never = {shape: wait for shape, wait in verdicts.items() if wait is not None}
    if not never:
        return
    shapes = zip(state.queue, map(SHAPE, state.queue))
    hopeless = {queued.id: never[shape] for queued, shape in shapes if shape in never}
    for task in Task.objects.select_for_update(of=("self",)).filter(pk__in=list(hopeless)).order_by("pk"):
        message = Sentence(
            N_("Taken out of the queue: it can never run on %(vc)s as its machines now are — it %(why)s."),
            vc=state.name, why=never_fits_sentence(hopeless[task.pk]),
        )
        task_transition(
            task=task, transition="stop", message=message, pinned=False, queued_at=None, status_message=message,
        )
    state.queue = [queued for queued in state.queue if queued.id not in hopeless]


def write_reclaims(state, plan, ports):
    """Kill the holders ``plan`` reclaims (tasks on borrowed SKUs) for the tasks it places, with the reason."""
    if not plan.reclaims:
        return
    queued = {task.id: task for task in state.queue if task.id in plan.reclaims}
    names = dict(Task.objects.filter(pk__in=list(plan.reclaims)).values_list("pk", "name"))
    killed_for = {victim: task_id for task_id, victims in plan.reclaims.items() for victim in victims}
    victims = Task.objects.select_for_update(of=("self",)).select_related("owner").filter(pk__in=list(killed_for))
    for victim in victims.order_by("pk"):
        task = queued[killed_for[victim.pk]]
        why = Sentence(
            N_("Killed: it ran on borrowed SKUs, reclaimed for project %(project)s (for “%(task)s”)."),
            project=state.quotas[task.project].project_name, task=names[task.id],
        )
        ports.release(victim.endpoint_port)
        task_transition(
            task=victim, transition="kill", operation="reclaim", message=why, endpoint_port=None, status_message=why,
            killed_for=Task(pk=task.id),
        )
        dispatch.teardown_after_commit(victim.pk, victim.current_run_id)
        notices.mail_killed(victim, why)


def write_plans(states, plans, ports, how=None):
    """Write what ``plans`` decided for ``states``: the reclaimed tasks killed, then the placements."""
    placements = {}
    for vc_id, plan in plans.items():
        write_reclaims(states[vc_id], plan, ports)
        for task_id, node_ids in plan.placements.items():
            placements[task_id] = (states[vc_id], node_ids)
    return write_placements(placements, ports, how)


@SCHEDULING_PASS_SECONDS.time()
def run_pass(clusters, ports=None):
    """Decide and write every locked VC in ``clusters``; returns the ids placed."""
    ports = ports or PortBook(locked=True)
    states = cluster_states(clusters, for_pass=True)
    for state in states.values():
        drop_hopeless(state)
    return write_plans(states, plan_clusters(states, ports), ports)


@transaction.atomic
def schedule_virtual_cluster(*, virtual_cluster_id):
    """The scheduling pass of one VC: start every queued task its policy lets start now. Returns the ids placed."""
    return run_pass(lock_clusters([virtual_cluster_id]))


@transaction.atomic
def schedule_all(*, virtual_cluster_ids=None):
    """The pass over every VC (or those given) in one transaction, with a fixed number of reads.

    A VC whose row another transaction holds is skipped: that transaction is deciding it right now,
    and every deciding service ends with the pass. Returns the ids placed.
    """
    return run_pass(lock_clusters(virtual_cluster_ids, skip_locked=True))


def node_changed(*, node):
    """A machine was added, changed, cordoned or uncordoned: re-examine its VC's queue now."""
    return schedule_virtual_cluster(virtual_cluster_id=node.virtual_cluster_id)
