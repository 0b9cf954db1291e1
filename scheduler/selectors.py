"""Reads for the scheduler: the plain-data state of virtual clusters, and the queue status views.

Every function here reads with a fixed number of queries, whatever the number of tasks or VCs:
one for the clusters, one for their machines, one aggregate for the SKUs held, one for the quotas, one for
the queues; and where some VC has quotas or fair share, one for what each project holds (its holders, one
row per instance, where some VC reclaims).
"""

import gc
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import groupby
from operator import itemgetter

from django.db import connection
from django.db.models import Case, F, Sum, Value, When
from django.utils.translation import gettext as _

from clusters.models import Node, Project, VirtualCluster
from clusters.permissions import is_manager
from tasks.models import Task, TaskInstance
from tasks.states import HOLDING, Status

from .placement import Demand, FreeBlocks, Machine, never_fits
from .ports import PortBook
from .queues import FAIR_SHARE, QueuedTask, Quota, borrowed, plan_queue
from .reasons import wait_text
from .victims import Holder

STATE_FIELDS = ("id", "name", "gpu_type", "sku_gpus", "queue_policy", "reclaim")
# A VC's row joined to its quotas, one row per quota (the VC's own row once when it has none): no query of their own.
QUOTA_FIELDS = ("quotas__project_id", "quotas__project__name", "quotas__guaranteed_skus", "quotas__borrowing_limit")
CLUSTER_FIELDS = STATE_FIELDS + QUOTA_FIELDS


@dataclass
class ClusterState:
    """One VC as the scheduler decides on it: its machines (with SKUs used) and its queue in order."""

    id: int
    name: str
    gpu_type: str
    sku_gpus: int
    queue_policy: str
    reclaim: bool = False
    machines: list = field(default_factory=list)
    machine_info: dict = field(default_factory=dict)  # machine id -> {"name", "gpu_type", "capacity"}
    queue: list = field(default_factory=list)
    owners: dict = field(default_factory=dict)  # task id -> (owner id, owner username), when asked for
    projects: dict = field(default_factory=dict)  # task id -> project id, with the owners
    quotas: dict = field(default_factory=dict)  # project id -> queues.Quota
    usage: dict = field(default_factory=dict)  # project id -> SKUs its holding tasks use here
    holders: list = field(default_factory=list)  # victims.Holder of every holding task, where the VC reclaims
    holder_projects: dict = field(default_factory=dict)  # task id -> project id, for ``holders``

    @property
    def shared(self):
        """Whether the VC's decisions read what each project holds (quotas, fair share)."""
        return bool(self.quotas) or self.queue_policy == FAIR_SHARE

    @property
    def reclaimable(self):
        """The holders on other projects' borrowed SKUs, where the VC reclaims (none without quotas)."""
        if not (self.reclaim and self.quotas):
            return []
        return borrowed(self.holders, self.holder_projects, self.quotas)

    @property
    def total_skus(self):
        return sum(m.capacity for m in self.machines if m.schedulable)

    @property
    def free_skus(self):
        return FreeBlocks(self.machines).total


def cluster_states(clusters, *, with_owners=False, with_queue=True, for_pass=False):
    """{vc id: ClusterState} for ``clusters`` (dicts with CLUSTER_FIELDS): two queries without the queue, with it
    three, one more where some VC has quotas or fair share and one where some VC reclaims. ``for_pass``: the
    pass says no reasons, so the queued tasks' names are left out, and its read of the queues is planned as
    ``PASS_READ_SETTINGS`` says (the queue index read in order, not 100,000 rows sorted: two statements more,
    one before the read, one after)."""
    states = {}
    for row in clusters:
        if row["id"] not in states:
            states[row["id"]] = ClusterState(**{name: row[name] for name in STATE_FIELDS})
        project, project_name, guaranteed, limit = (row[name] for name in QUOTA_FIELDS)
        if project is not None:
            states[row["id"]].quotas[project] = Quota(project_name, guaranteed, limit)
    if not states:
        return states
    with collector_paused():
        _read_rows(states, with_owners=with_owners, with_queue=with_queue, for_pass=for_pass)
    return states


def _read_rows(states, *, with_owners, with_queue, for_pass):
    """Fill ``states`` (``cluster_states``): their machines with what is used on them, the holders, the queues."""
    ids = list(states)
    holding = TaskInstance.objects.holding().filter(node__virtual_cluster_id__in=ids).order_by()
    if with_queue and any(state.shared for state in states.values()):
        # One read for both: what each machine has used, and what each project holds on it.
        by_project = list(
            holding.values("node_id", "task__project_id").annotate(used=Sum("sku_count"))
            .values_list("node_id", "task__project_id", "used")
        )
        used = defaultdict(int)
        for node_id, _project, skus in by_project:
            used[node_id] += skus
    else:
        by_project = ()
        used = dict(holding.values("node_id").annotate(used=Sum("sku_count")).values_list("node_id", "used"))
    nodes = Node.objects.filter(virtual_cluster_id__in=ids).order_by("name").values_list(
        "id", "name", "virtual_cluster_id", "sku_capacity", "schedulable", "gpu_type"
    )
    cluster_of = {}
    for node_id, name, vc_id, capacity, schedulable, gpu_type in nodes:
        state = states[vc_id]
        state.machines.append(Machine(node_id, name, capacity, used.get(node_id, 0), schedulable))
        state.machine_info[node_id] = {"name": name, "gpu_type": gpu_type, "capacity": capacity}
        cluster_of[node_id] = state
    if not with_queue:
        return
    for node_id, project, skus in by_project:
        usage = cluster_of[node_id].usage
        usage[project] = usage.get(project, 0) + skus
    _read_holders(states)
    _read_queues(states, with_owners=with_owners, for_pass=for_pass)


QUEUE_ORDER = ("virtual_cluster_id", "-pinned", "-priority", "queued_at", "id")


def _read_queues(states, *, with_owners, for_pass):
    """The queues of ``states`` in their order, straight from the cursor (a pass reads 100,000 rows).

    Each row comes as the VC's id and then ``QueuedTask``'s fields in their order (the name empty for a pass,
    which says no reasons; the port only where the task exposes one), so a queue is its rows made tuples by C
    code alone, not a Python call per task."""
    owners = ("owner_id", "owner__username") if with_owners else ()
    rows = (
        Task.objects.filter(status=Status.QUEUED, virtual_cluster_id__in=list(states)).order_by(*QUEUE_ORDER)
        .annotate(
            label=Value("") if for_pass else F("name"),
            port=Case(When(expose_port=True, then=F("external_port")), default=None),
        )
        .values_list(
            "virtual_cluster_id", "id", "label", "sku_count", "replicas", "pinned", "port", "project_id", "priority",
            *owners,
        )
    )
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor, _planned_for_pass(cursor, for_pass):
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    fields_of = itemgetter(slice(1, 1 + len(QueuedTask._fields)))
    make = partial(tuple.__new__, QueuedTask)  # what QueuedTask._make does, without its Python frame
    for vc_id, group in groupby(rows, key=itemgetter(0)):
        state = states[vc_id]
        if not with_owners:
            state.queue.extend(map(make, map(fields_of, group)))
            continue
        for row in group:
            task = make(fields_of(row))
            state.queue.append(task)
            state.owners[task.id] = row[-2:]
            state.projects[task.id] = task.project


# How PostgreSQL plans the pass's read of the queues, for that read alone. It costs each heap page of an index
# scan as a read from disk (``random_page_cost`` 4) and so would rather scan the table and sort 100,000 queued
# rows than read ``task_queue_idx`` in the queue's order; a pass reads the queue every few seconds, so its pages
# are in memory, where a random read costs about what a sequential one does. Measured at 100,000 queued:
# 0.09 s read in the index's order, 0.19–0.35 s scanned and sorted. Should it sort after all, in memory.
PASS_READ_SETTINGS = (("random_page_cost", "1.1"), ("work_mem", "64MB"))
PASS_READ_SAVEPOINT = "pass_read"


@contextmanager
def _planned_for_pass(cursor, for_pass):
    """``PASS_READ_SETTINGS`` for the read inside (a pass's, on PostgreSQL, in its transaction), then the settings
    exactly as they were: they are set in a savepoint of their own, rolled back after the read. A read that fails
    leaves its own error; the rollback of the transaction or savepoint that holds the pass takes the settings too."""
    if not (for_pass and connection.vendor == "postgresql" and connection.in_atomic_block):
        yield
        return
    settings = "; ".join(f"SET LOCAL {name} = '{value}'" for name, value in PASS_READ_SETTINGS)
    cursor.execute(f"SAVEPOINT {PASS_READ_SAVEPOINT}; {settings}")
    yield  # not in a finally: after an error the transaction is aborted, and a rollback is its holder's to do
    cursor.execute(f"ROLLBACK TO SAVEPOINT {PASS_READ_SAVEPOINT}; RELEASE SAVEPOINT {PASS_READ_SAVEPOINT}")


@contextmanager
def collector_paused():
    """Python's cyclic collector paused while the rows are read and made tuples, then as it was.

    The rows hold numbers and strings, no cycle, yet making 100,000 of them starts some 400 collections, two of
    them full ones that walk every object the process holds: 0.21–0.27 s of a 100,000-row pass in the benchmark,
    0.03 s for the one collection after a paused read (``bench_scheduler``'s world, passes taken in turns)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_holders(states):
    """The holding tasks of the VCs that reclaim, one row per instance (reclaim chooses among them)."""
    reclaiming = [state.id for state in states.values() if state.reclaim and state.quotas]
    if not reclaiming:
        return
    instances, started = defaultdict(list), {}
    rows = TaskInstance.objects.holding().filter(node__virtual_cluster_id__in=reclaiming).values_list(
        "node__virtual_cluster_id", "task__project_id", "task_id", "task__started_at", "node_id", "sku_count"
    )
    for vc_id, project_id, task_id, started_at, node_id, skus in rows:
        instances[task_id].append((node_id, skus))
        started[task_id] = (vc_id, started_at)
        states[vc_id].holder_projects[task_id] = project_id
    for task_id, (vc_id, started_at) in started.items():
        states[vc_id].holders.append(Holder(task_id, started_at, tuple(instances[task_id])))


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
            ports_in_use=ports.for_queue(state.queue), explain=explain, quotas=state.quotas, usage=state.usage,
            reclaimable=state.reclaimable, holder_projects=state.holder_projects,
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
        "sku_count": task.sku_count, "replicas": task.replicas, "priority": task.priority,
        "position": plan.positions[task.id], "reason_code": wait.code, "reason": wait_text(wait),
    }


def _quotas(state):
    """The VC's quotas as the queue shows them: each project's SKUs used, guaranteed and the borrowing limit."""
    return sorted(
        (
            {"project": quota.project_name, "used": state.usage.get(project, 0), "guaranteed": quota.guaranteed,
             "borrowing_limit": quota.borrowing_limit}
            for project, quota in state.quotas.items()
        ),
        key=lambda row: row["project"],
    )


def queue_status(*, user, virtual_cluster_id=None, limit=20):
    """The live queue of every VC the user may see (the sidebar and ``GET /api/v1/queue/``).

    Per VC: id, name, gpu_type, queue_policy, free/total SKUs and GPUs, queued_count, reclaim, quotas (per
    project: used, guaranteed, borrowing_limit), pinned ({id, name} or None), ``queue`` (the first ``limit`` queued tasks in order, pinned first; all of them when ``limit`` is
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
        in_line = state.queue
        if state.shared:  # the order they are decided in, not their arrival
            in_line = sorted(state.queue, key=lambda t: plan.positions[t.id])
        shown = in_line if limit is None else in_line[:limit]
        pinned = next((t for t in state.queue if t.pinned), None)
        result.append({
            "id": state.id, "name": state.name, "gpu_type": state.gpu_type, "queue_policy": state.queue_policy,
            **_capacity(state),
            "queued_count": len(state.queue), "reclaim": state.reclaim, "quotas": _quotas(state),
            "pinned": {
                "id": pinned.id, "name": _("a task of another project") if pinned.id in hidden else pinned.name,
                "visible": pinned.id not in hidden,
            } if pinned else None,
            "queue": [_entry(state, plan, t, hidden) for t in shown],
            "mine": [_entry(state, plan, t, hidden) for t in in_line if state.owners[t.id][0] == user.pk],
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
