"""One VC's queue, decided: which queued tasks start now and why each other one waits (pure).

The queue comes in SPEC's order (the pinned task first, then by the time each was queued).
- ``strict_fifo``: nothing overtakes the first task that does not fit.
- ``best_effort_fifo``: a later task that fits starts while an earlier one waits.
- A pinned task that does not fit is a barrier under either policy: nothing overtakes it.
- A task whose external port another task holds waits like one that does not fit: it is a barrier
  when pinned or under strict FIFO (SPEC: nothing overtakes them), and is overtaken under best effort.
- An unpinned task that could never fit the VC (its machines were removed after it was queued) waits
  without blocking the tasks behind it: it would otherwise stall the queue forever. A pinned one still
  blocks (nothing overtakes a pinned task). The scheduling pass then takes such tasks out of the queue
  (stopped, with the reason: ``scheduler.scheduling``), as SPEC refuses them at start.
"""

from dataclasses import dataclass, field, replace

from .placement import Capacity, Demand, FreeBlocks, Wait, WaitCode, why_not

# The values of clusters.models.QueuePolicy (kept literal: this module stays free of the ORM).
STRICT_FIFO = "strict_fifo"
BEST_EFFORT_FIFO = "best_effort_fifo"


@dataclass(frozen=True)
class QueuedTask:
    """A queued task as the scheduler sees it."""

    id: int
    name: str
    sku_count: int
    replicas: int = 1
    pinned: bool = False
    external_port: int | None = None

    @property
    def demand(self):
        return Demand(self.sku_count, self.replicas)


@dataclass
class QueuePlan:
    """The decision for one VC.

    ``placements`` maps each task to start to its machine ids (one per replica), in queue order.
    With ``explain``, ``waits`` and ``positions`` (1-based, among the tasks left waiting) cover every other task.
    """

    placements: dict = field(default_factory=dict)
    waits: dict = field(default_factory=dict)
    positions: dict = field(default_factory=dict)


def plan_queue(*, machines, queue, policy, ports_in_use=frozenset(), explain=False):
    """Decide the queue of one VC: what starts now (best fit, all-or-nothing), and why the rest waits.

    ``machines`` are every machine of the VC (cordoned ones too: they decide ``never_fits``), with the SKUs
    their holding instances use. ``ports_in_use`` are the endpoint ports held by running tasks anywhere.
    Without ``explain`` the plan stops as soon as nothing further could start (the scheduling pass);
    with it, every waiting task gets its position and reason (the queue views).
    """
    blocks = FreeBlocks(machines)
    capacity = Capacity(machines)
    schedulable = Capacity(machines, schedulable_only=True)
    cordoned = tuple(machine.name for machine in machines if not machine.schedulable)
    ports = set(ports_in_use)
    plan = QueuePlan()
    failed = set()  # demands that did not fit: blocks only shrink during a pass, so they fail again
    barrier = None  # (code, task name, task id) once something may no longer be overtaken
    waiting = 0

    def wait(task, result):
        nonlocal waiting
        waiting += 1
        if explain:
            plan.waits[task.id] = result
            plan.positions[task.id] = waiting

    def block_behind(task):
        nonlocal barrier
        if task.pinned:
            barrier = (WaitCode.BEHIND_PINNED, task.name, task.id)
        elif policy == STRICT_FIFO:
            barrier = (WaitCode.BEHIND_HEAD, task.name, task.id)

    for task in queue:
        demand = task.demand
        hopeless = capacity.never_fits(demand, ahead=waiting)
        if hopeless is not None:
            wait(task, hopeless)
            if task.pinned and barrier is None:
                barrier = (WaitCode.BEHIND_PINNED, task.name, task.id)
            continue
        if barrier is not None:
            if not explain:
                break
            wait(task, Wait(
                code=barrier[0], sku_count=task.sku_count, replicas=task.replicas, ahead=waiting,
                blocker=barrier[1], blocker_id=barrier[2],
            ))
            continue
        if task.external_port is not None and task.external_port in ports:
            wait(task, Wait(
                code=WaitCode.PORT_IN_USE, sku_count=task.sku_count, replicas=task.replicas, ahead=waiting,
                port=task.external_port,
            ))
            block_behind(task)
            continue
        chosen = None if (task.sku_count, task.replicas) in failed else blocks.take(demand)
        if chosen is not None:
            plan.placements[task.id] = chosen
            if explain:  # still queued until the pass writes it: it keeps its place in line
                wait(task, Wait(code=WaitCode.PLACEABLE, sku_count=task.sku_count, replicas=task.replicas, ahead=waiting))
            if task.external_port is not None:
                ports.add(task.external_port)
            continue
        failed.add((task.sku_count, task.replicas))
        if explain:
            reason = why_not(blocks, demand, ahead=waiting)
            if cordoned and not schedulable.can_fit(demand):
                # Only the unschedulable machines could ever host it: say which, or it reads as a wait for GPUs.
                reason = replace(reason, unschedulable=cordoned)
            wait(task, reason)
        else:
            wait(task, None)
        block_behind(task)
    return plan
