"""Reads for the scheduler: the plain-data state of virtual clusters, and the queue status views.

Every function here reads with a fixed number of queries, whatever the number of tasks or VCs:
one for the clusters, one for their machines, one aggregate for the SKUs held, one for the queues.
"""

from collections import defaultdict
from dataclasses import dataclass, field, replace

from django.db.models import Sum
from django.utils.translation import gettext as _

from clusters.models import Node, Project, VirtualCluster
from clusters.permissions import is_manager
from tasks.models import Task, TaskInstance
from tasks.states import HOLDING, Status

from .placement import Demand, FreeBlocks, Machine, never_fits
from .ports import PortBook
from .queues import QueuedTask, plan_queue
from .reasons import wait_text

CLUSTER_FIELDS = ("id", "name", "gpu_type", "sku_gpus", "queue_policy")


@dataclass
class ClusterState:
    """One VC as the scheduler decides on it: its machines (with SKUs used) and its queue in order."""

    id: int
    name: str
    gpu_type: str
    sku_gpus: int
    queue_policy: str
    machines: list = field(default_factory=list)
    machine_info: dict = field(default_factory=dict)  # machine id -> {"name", "gpu_type", "capacity"}
    queue: list = field(default_factory=list)
    owners: dict = field(default_factory=dict)  # task id -> (owner id, owner username), when asked for
    projects: dict = field(default_factory=dict)  # task id -> project id, with the owners

    @property
    def total_skus(self):
        return sum(m.capacity for m in self.machines if m.schedulable)

    @property
    def free_skus(self):
        return FreeBlocks(self.machines).total


def cluster_states(clusters, *, with_owners=False, with_queue=True):
    """{vc id: ClusterState} for ``clusters`` (dicts with CLUSTER_FIELDS), read in three queries (two without the queue)."""
    states = {row["id"]: ClusterState(**{name: row[name] for name in CLUSTER_FIELDS}) for row in clusters}
    if not states:
        return states
    ids = list(states)
    used = dict(
        TaskInstance.objects.holding().filter(node__virtual_cluster_id__in=ids)
        .order_by()
        .values("node_id")
        .annotate(used=Sum("sku_count"))
        .values_list("node_id", "used")
    )
    nodes = Node.objects.filter(virtual_cluster_id__in=ids).order_by("name").values_list(
        "id", "name", "virtual_cluster_id", "sku_capacity", "schedulable", "gpu_type"
    )
    for node_id, name, vc_id, capacity, schedulable, gpu_type in nodes:
        state = states[vc_id]
        state.machines.append(Machine(node_id, name, capacity, used.get(node_id, 0), schedulable))
        state.machine_info[node_id] = {"name": name, "gpu_type": gpu_type, "capacity": capacity}
    if not with_queue:
        return states
    fields = ["id", "name", "sku_count", "replicas", "pinned", "expose_port", "external_port", "virtual_cluster_id"]
    if with_owners:
        fields += ["owner_id", "owner__username", "project_id"]
    rows = (
        Task.objects.filter(status=Status.QUEUED, virtual_cluster_id__in=ids)
        .order_by("virtual_cluster_id", "-pinned", "queued_at", "id")
        .values_list(*fields)
    )
    for row in rows:
        task_id, name, sku_count, replicas, pinned, expose_port, external_port, vc_id = row[:8]
        state = states[vc_id]
        port = external_port if expose_port else None
        state.queue.append(QueuedTask(task_id, name, sku_count, replicas, pinned, port))
        if with_owners:
            state.owners[task_id] = (row[8], row[9])
            state.projects[task_id] = row[10]
    return states


def plan_clusters(states, ports, *, explain=False):
    """{vc id: plan} for ``states``, decided as the scheduling pass decides them: VC by VC in id order,
    the fixed ports one plan gives out taken for the plans after it (``ports``: a ``PortBook``).

    The pass and the queue views both plan through here, so a reason shown is the decision the pass makes.
    """
    plans = {}
    for vc_id in sorted(states):
        state = states[vc_id]
        plans[vc_id] = plan = plan_queue(
            machines=state.machines, queue=state.queue, policy=state.queue_policy,
            ports_in_use=ports.for_queue(state.queue), explain=explain,
        )
        ports.plan(state.queue, plan)
    return plans


def virtual_cluster_capacity(*, virtual_cluster_ids):
    """{vc id: {total_skus, free_skus, total_gpus, free_gpus}} over the schedulable machines, and
    ``unschedulable_skus``: the SKUs of the machines taken out of scheduling."""
    clusters = VirtualCluster.objects.filter(pk__in=list(virtual_cluster_ids)).values(*CLUSTER_FIELDS)
    states = cluster_states(clusters, with_queue=False)
    return {vc_id: _capacity(state) for vc_id, state in states.items()}


def _capacity(state):
    total, free = state.total_skus, state.free_skus
    return {
        "total_skus": total, "free_skus": free,
        "total_gpus": total * state.sku_gpus, "free_gpus": free * state.sku_gpus,
        # Counted in neither: what sits on machines taken out of scheduling.
        "unschedulable_skus": sum(m.capacity for m in state.machines if not m.schedulable),
    }


def hidden_tasks(user, states):
    """Ids of the queued tasks of ``states`` that ``user`` sees only as "a task of another project": those of the
    projects the user is not a member of (but their own), unless the user is a manager (who sees everything)."""
    if user is None or is_manager(user):
        return set()
    mine = set(Project.objects.of_member(user).values_list("pk", flat=True))
    return {
        task_id for state in states.values() for task_id, project in state.projects.items()
        if project not in mine and state.owners[task_id][0] != user.pk
    }


def _said_wait(wait, hidden):
    return replace(wait, blocker=None) if wait.blocker_id in hidden else wait


def _entry(state, plan, task, hidden):
    wait = _said_wait(plan.waits[task.id], hidden)
    owner_id, owner = (None, None) if task.id in hidden else state.owners.get(task.id, (None, None))
    return {
        "id": task.id, "name": _("a task of another project") if task.id in hidden else task.name,
        "owner": owner, "owner_id": owner_id, "pinned": task.pinned,
        "sku_count": task.sku_count, "replicas": task.replicas,
        "position": plan.positions[task.id], "reason_code": wait.code, "reason": wait_text(wait),
    }


def queue_status(*, user, virtual_cluster_id=None, limit=20):
    """The live queue of every VC the user may see (the sidebar and ``GET /api/v1/queue/``).

    Per VC: id, name, gpu_type, queue_policy, free/total SKUs and GPUs, queued_count, pinned ({id, name} or
    None), ``queue`` (the first ``limit`` queued tasks in order, pinned first; all of them when ``limit`` is
    None) and ``mine`` (the user's own queued tasks), each entry with position and reason.
    """
    clusters = VirtualCluster.objects.visible_to(user).order_by("name")
    if virtual_cluster_id is not None:
        clusters = clusters.filter(pk=virtual_cluster_id)
    states = cluster_states(clusters.values(*CLUSTER_FIELDS), with_owners=True)
    plans = plan_clusters(states, PortBook(locked=False), explain=True)
    hidden = hidden_tasks(user, states)
    result = []
    for state in states.values():
        plan = plans[state.id]
        shown = state.queue if limit is None else state.queue[:limit]
        pinned = next((t for t in state.queue if t.pinned), None)
        result.append({
            "id": state.id, "name": state.name, "gpu_type": state.gpu_type, "queue_policy": state.queue_policy,
            **_capacity(state),
            "queued_count": len(state.queue),
            "pinned": {
                "id": pinned.id, "name": _("a task of another project") if pinned.id in hidden else pinned.name,
                "visible": pinned.id not in hidden,
            } if pinned else None,
            "queue": [_entry(state, plan, t, hidden) for t in shown],
            "mine": [_entry(state, plan, t, hidden) for t in state.queue if state.owners[t.id][0] == user.pk],
        })
    return result


def queue_info_for(tasks, *, user=None):
    """{task id: (position, reason in words)} for the queued ones among ``tasks``, in a fixed number of queries.

    With ``user``, a reason naming a task of a project the user is not in says "a task of another project".
    """
    wanted = defaultdict(set)
    for task in tasks:
        if task.status == Status.QUEUED:
            wanted[task.virtual_cluster_id].add(task.pk)
    if not wanted:
        return {}
    clusters = VirtualCluster.objects.filter(pk__in=list(wanted)).values(*CLUSTER_FIELDS)
    states = cluster_states(clusters, with_owners=user is not None)
    plans = plan_clusters(states, PortBook(locked=False), explain=True)
    hidden = hidden_tasks(user, states)
    info = {}
    for vc_id, plan in plans.items():
        for task_id in wanted[vc_id] & plan.positions.keys():
            info[task_id] = (plan.positions[task_id], wait_text(_said_wait(plan.waits[task_id], hidden)))
    return info


def capacity_warning(*, virtual_cluster, sku_count, replicas):
    """The reason in words when ``replicas`` × ``sku_count`` could never fit ``virtual_cluster``, else None.

    For the create form and API to warn before a start would be refused.
    """
    machines = [
        Machine(node_id, name, capacity, 0, schedulable)
        for node_id, name, capacity, schedulable in virtual_cluster.nodes.values_list(
            "id", "name", "sku_capacity", "schedulable"
        )
    ]
    wait = never_fits(machines, Demand(sku_count, replicas))
    return wait_text(wait) if wait else None
