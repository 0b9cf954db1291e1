"""One VC's queue, decided: which queued tasks start now and why each other one waits (pure).

The queue comes in SPEC's order: the pinned task first, then by priority (highest first), then by the
time each was queued (``queue_key``).
- ``strict_fifo``: nothing overtakes the first task that does not fit.
- ``best_effort_fifo``: a later task that fits starts while an earlier one waits.
- ``fair_share``: the next task is taken from the project with the lowest dominant share of its guarantee
  (Dominant Resource Fairness over the one resource a VC has, its SKUs: used / guaranteed); within a
  project in queue order, and a project's first task that does not fit holds back that project's others.
  Projects without a guarantee come after those with one, the least served first.
- A pinned task that does not fit is a barrier under every policy: nothing overtakes it.
- A task whose external port another task holds waits like one that does not fit: it is a barrier
  when pinned or under strict FIFO (SPEC: nothing overtakes them), and is overtaken under best effort.
- An unpinned task that could never fit the VC (its machines were removed after it was queued) waits
  without blocking the tasks behind it: it would otherwise stall the queue forever. A pinned one still
  blocks (nothing overtakes a pinned task). The scheduling pass then takes such tasks out of the queue
  (stopped, with the reason: ``scheduler.scheduling``), as SPEC refuses them at start.

Quotas (a VC with at least one ``Quota``): every project has a guarantee (0 without a quota) and may
borrow beyond it, up to its borrowing limit, from SKUs nobody's guarantee needs now. The queue is decided
in two sweeps, in the policy's order: first every task that keeps its project within its guarantee (the
others are set aside, not failed: they block nothing), then the borrowing ones. So a project under its
guarantee never waits behind another's borrowing; a barrier of the first sweep still holds in the second.
A borrowing task over its project's limit waits (``quota``) without blocking other projects. With
``reclaim``, a task within its guarantee that does not fit kills tasks running on other projects' borrowed
SKUs (``victims.choose_victims``, among ``reclaimable`` holders only): ``QueuePlan.reclaims``.
"""

import heapq
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from .placement import Capacity, Demand, FreeBlocks, Wait, WaitCode, why_not
from .victims import choose_victims

# The values of clusters.models.QueuePolicy (kept literal: this module stays free of the ORM).
STRICT_FIFO = "strict_fifo"
BEST_EFFORT_FIFO = "best_effort_fifo"
FAIR_SHARE = "fair_share"


class QueuedTask(NamedTuple):
    """A queued task as the scheduler sees it (a tuple: a pass reads 100,000 of them)."""

    id: int
    name: str
    sku_count: int
    replicas: int = 1
    pinned: bool = False
    external_port: int | None = None
    project: int | None = None
    priority: int = 0

    @property
    def demand(self):
        return Demand(self.sku_count, self.replicas)


def queue_key(task, arrival):
    """The queue's order: pinned first, then the highest priority, then arrival (any comparable value)."""
    return (not task.pinned, -task.priority, arrival)


def insert_arrival(queue, task):
    """Put ``task``, queued just now, where it belongs: after every task of its priority or higher."""
    at = len(queue)
    while at and not queue[at - 1].pinned and queue[at - 1].priority < task.priority:
        at -= 1
    queue.insert(at, task)


@dataclass(frozen=True)
class Quota:
    """A project's guaranteed SKUs in a VC and how many beyond them it may borrow (None: no limit)."""

    project_name: str
    guaranteed: int
    borrowing_limit: int | None = None


NO_QUOTA = Quota("", 0, None)


@dataclass
class QueuePlan:
    """The decision for one VC.

    ``placements`` maps each task to start to its machine ids (one per replica), in the order decided.
    ``reclaims`` maps a task among them to the holders killed to make room for it (task ids).
    With ``explain``, ``waits`` and ``positions`` (1-based, in the order the tasks are decided) cover every
    other task.
    """

    placements: dict = field(default_factory=dict)
    reclaims: dict = field(default_factory=dict)
    waits: dict = field(default_factory=dict)
    positions: dict = field(default_factory=dict)


def plan_queue(*, machines, queue, policy, ports_in_use=frozenset(), explain=False,
               quotas=None, usage=None, reclaimable=(), holder_projects=None):
    """Decide the queue of one VC: what starts now (best fit, all-or-nothing), and why the rest waits.

    ``machines`` are every machine of the VC (cordoned ones too: they decide ``never_fits``), with the SKUs
    their holding instances use. ``ports_in_use`` are the endpoint ports held by running tasks anywhere.
    ``quotas`` ({project: Quota}) and ``usage`` ({project: SKUs held}) turn on the two sweeps; ``reclaimable``
    (``victims.Holder``s on borrowed SKUs, of the projects in ``holder_projects``) turns on reclaim.
    Without ``explain`` the plan stops as soon as nothing further could start (the scheduling pass);
    with it, every waiting task gets its position and reason (the queue views).
    """
    planner = _Planner(machines, policy, ports_in_use, explain, quotas or {}, usage or {})
    planner.reclaimable, planner.holder_projects = list(reclaimable), holder_projects or {}
    if not planner.quotas:
        planner.sweep(queue, defer=False)
    else:
        deferred = planner.sweep(queue, defer=True)
        planner.blocked_projects.clear()  # a project holds back its own within a sweep
        planner.sweep(deferred, defer=False)
    return planner.plan


class _Planner:
    def __init__(self, machines, policy, ports_in_use, explain, quotas, usage):
        self.machines = machines
        self.blocks = FreeBlocks(machines)
        self.capacity = Capacity(machines)
        self.schedulable = Capacity(machines, schedulable_only=True)
        self.cordoned = tuple(machine.name for machine in machines if not machine.schedulable)
        self.policy, self.explain, self.quotas = policy, explain, quotas
        self.usage = dict(usage)
        self.ports = set(ports_in_use)
        self.plan = QueuePlan()
        self.failed = set()  # (sku, replicas) that did not fit: blocks only shrink (reclaim aside)
        self.hopeless = {}  # (sku, replicas) -> never_fits Wait or None
        self.barrier = None  # (code, task name, task id) once nothing may overtake
        self.blocked_projects = {}  # project -> (name, id) of its first task that waits (fair share; strict quota)
        self.waiting = 0
        self.reclaimable, self.holder_projects = [], {}  # set by plan_queue where the VC reclaims

    def wait(self, task, result):
        self.waiting += 1
        if self.explain:
            self.plan.waits[task.id] = result
            self.plan.positions[task.id] = self.waiting

    def said(self, code, task, **numbers):
        return Wait(code=code, sku_count=task.sku_count, replicas=task.replicas, ahead=self.waiting, **numbers)

    def block_behind(self, task):
        if task.pinned:
            self.barrier = (WaitCode.BEHIND_PINNED, task.name, task.id)
        elif self.policy == STRICT_FIFO:
            self.barrier = (WaitCode.BEHIND_HEAD, task.name, task.id)
        elif self.policy == FAIR_SHARE:
            self.blocked_projects.setdefault(task.project, (task.name, task.id))

    def quota(self, project):
        return self.quotas.get(project, NO_QUOTA)

    def borrowing(self, task):
        """SKUs beyond its guarantee its project would use with ``task`` (0: within its guarantee)."""
        return max(0, self.usage.get(task.project, 0) + task.sku_count * task.replicas - self.quota(task.project).guaranteed)

    def order(self, tasks):
        """The tasks in the order the policy takes them; fair share reads the usage as it grows."""
        if self.policy != FAIR_SHARE:
            yield from tasks
            return
        lines, rank = {}, {}
        for position, task in enumerate(tasks):
            if task.pinned:
                yield task
            else:
                lines.setdefault(task.project, []).append(task)
                rank[task.id] = position
        heads = dict.fromkeys(lines, 0)
        heap = [(self.share(project), rank[line[0].id], project) for project, line in lines.items()]
        heapq.heapify(heap)
        while heap:
            _share, _rank, project = heapq.heappop(heap)
            if project in self.blocked_projects and not self.explain:
                continue
            line = lines[project]
            yield line[heads[project]]
            heads[project] += 1
            if heads[project] < len(line):
                heapq.heappush(heap, (self.share(project), rank[line[heads[project]].id], project))

    def share(self, project):
        """The dominant share of ``project``'s guarantee it uses (one resource: SKUs); no guarantee sorts last."""
        guaranteed, used = self.quota(project).guaranteed, self.usage.get(project, 0)
        return (0, used / guaranteed) if guaranteed else (1, used)

    def sweep(self, tasks, *, defer):
        """Decide ``tasks`` in the policy's order; with ``defer``, those that would borrow are returned, undecided."""
        deferred = []
        for task in self.order(tasks):
            if defer and not task.pinned and self.borrowing(task):
                deferred.append(task)
                continue
            if not self.decide(task, within=defer) and not self.explain and self.barrier is not None:
                break
        return deferred

    def decide(self, task, *, within):
        """Place ``task`` or say why it waits; False once it may not even be looked at (behind a barrier)."""
        key = (task.sku_count, task.replicas)
        if key not in self.hopeless:
            self.hopeless[key] = self.capacity.never_fits(task.demand)
        if self.hopeless[key] is not None:
            self.wait(task, self.said(WaitCode.NEVER_FITS, task, ever_fitting_instances=self.hopeless[key].ever_fitting_instances,
                                      largest_capacity=self.hopeless[key].largest_capacity))
            if task.pinned and self.barrier is None:
                self.barrier = (WaitCode.BEHIND_PINNED, task.name, task.id)
            return True
        if self.barrier is not None:
            self.wait(task, self.said(self.barrier[0], task, blocker=self.barrier[1], blocker_id=self.barrier[2]))
            return False
        if task.project in self.blocked_projects:
            name, blocker_id = self.blocked_projects[task.project]
            self.wait(task, self.said(WaitCode.BEHIND_PROJECT, task, blocker=name, blocker_id=blocker_id))
            return True
        if task.external_port is not None and task.external_port in self.ports:
            self.wait(task, self.said(WaitCode.PORT_IN_USE, task, port=task.external_port))
            self.block_behind(task)
            return True
        if self.quotas and not self.within_limit(task):
            return True
        chosen = None if key in self.failed else self.blocks.take(task.demand)
        if chosen is None and within and self.reclaimable and not self.borrowing(task):
            chosen = self.reclaim(task)
        if chosen is None:
            self.failed.add(key)
            self.wait(task, self._why_not(task) if self.explain else None)
            self.block_behind(task)
            return True
        self.plan.placements[task.id] = chosen
        self.usage[task.project] = self.usage.get(task.project, 0) + task.sku_count * task.replicas
        if self.explain:  # still queued until the pass writes it: it keeps its place in line
            self.wait(task, self.said(WaitCode.PLACEABLE, task))
        if task.external_port is not None:
            self.ports.add(task.external_port)
        return True

    def _why_not(self, task):
        reason = why_not(self.blocks, task.demand, ahead=self.waiting)
        if self.cordoned and not self.schedulable.can_fit(task.demand):
            # Only the unschedulable machines could ever host it: say which, or it reads as a wait for GPUs.
            reason = replace(reason, unschedulable=self.cordoned)
        return reason

    def within_limit(self, task):
        """Whether ``task`` may borrow what it would; if not it waits, and holds back its project if pinned or strict."""
        quota, borrowed = self.quota(task.project), self.borrowing(task)
        if quota.borrowing_limit is None or borrowed <= quota.borrowing_limit:
            return True
        used = self.usage.get(task.project, 0)
        self.wait(task, self.said(
            WaitCode.QUOTA, task, project=quota.project_name, used=used, guaranteed=quota.guaranteed,
            borrowable=max(0, quota.guaranteed + quota.borrowing_limit - used),
        ))
        if task.pinned:
            self.barrier = (WaitCode.BEHIND_PINNED, task.name, task.id)
        elif self.policy != BEST_EFFORT_FIFO:
            self.blocked_projects.setdefault(task.project, (task.name, task.id))
        return False

    def reclaim(self, task):
        """Make room for ``task`` (within its guarantee) by killing tasks on other projects' borrowed SKUs."""
        others = [h for h in self.reclaimable if self.holder_projects.get(h.task_id) != task.project]
        if not others:
            return None
        # Refused at once (``short``) when not even every one of them gone would make room: no search then.
        choice = choose_victims(machines=self.blocks.now(self.machines), holders=others, demand=task.demand)
        if not choice.fits or not choice.victims:
            return None
        killed = set(choice.victims)
        for holder in others:
            if holder.task_id in killed:
                project = self.holder_projects[holder.task_id]
                for machine_id, skus in holder.instances:
                    self.blocks.give(machine_id, skus)
                    self.usage[project] = self.usage.get(project, 0) - skus
        self.reclaimable = [h for h in self.reclaimable if h.task_id not in killed]
        self.failed.clear()  # the blocks grew
        self.plan.reclaims[task.id] = choice.victims
        return self.blocks.take(task.demand)


def borrowed(holders, holder_projects, quotas):
    """The holders running wholly on borrowed SKUs: a project's tasks, the longest-running first, past its guarantee.

    Killing any of them leaves their project at or above its guarantee (those within it are never victims).
    """
    used, found = {}, []
    for holder in sorted(holders, key=lambda h: (h.started_at is None, h.started_at, h.task_id)):
        project = holder_projects[holder.task_id]
        before = used.get(project, 0)
        used[project] = before + sum(skus for _machine, skus in holder.instances)
        if before >= quotas.get(project, NO_QUOTA).guaranteed:
            found.append(holder)
    return found
