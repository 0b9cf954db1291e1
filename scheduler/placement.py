"""Placement: where a task's replicas go, or why they cannot go anywhere now (pure, STYLE.md §7).

Plain data in, plain data out: no database, no clock. A task is placed all-or-nothing: every
replica on one schedulable machine with ``sku_count`` free SKUs, each replica on the machine that
leaves the least room (best fit), ties broken by machine name.

Replicas of one task are identical, so a task fits exactly when the machines together can host
``replicas`` blocks of ``sku_count`` (``sum(free // sku_count)``); greedy best fit never turns a
fitting task into a failing one, which is why feasibility and the choice of machines agree.
Why a task waits is said in words by ``scheduler.reasons``.
"""

from bisect import insort
from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Machine:
    """A machine of a VC: its SKU capacity and the SKUs its holding instances use."""

    id: int
    name: str
    capacity: int
    used: int = 0
    schedulable: bool = True

    @property
    def free(self):
        return max(0, self.capacity - self.used)


@dataclass(frozen=True)
class Demand:
    """What one task asks for: ``replicas`` instances of ``sku_count`` SKUs, each on one machine."""

    sku_count: int
    replicas: int = 1

    @property
    def total(self):
        return self.sku_count * self.replicas


class WaitCode:
    BEHIND_PINNED = "behind_pinned"
    BEHIND_HEAD = "behind_head"
    FRAGMENTED = "fragmented"
    CAPACITY = "capacity"
    NEVER_FITS = "never_fits"
    PORT_IN_USE = "port_in_use"
    BEHIND_PROJECT = "behind_project"
    QUOTA = "quota"
    PLACEABLE = "placeable"


@dataclass(frozen=True)
class Wait:
    """Why a task is not placed, with the numbers its message needs."""

    code: str
    sku_count: int
    replicas: int
    ahead: int = 0
    free_total: int = 0
    largest_free: int = 0
    largest_machine: str | None = None
    fitting_instances: int = 0
    ever_fitting_instances: int = 0
    largest_capacity: int = 0
    blocker: str | None = None
    blocker_id: int | None = None  # the blocker's task id: a reader outside its project is not told its name
    port: int | None = None
    unschedulable: tuple = ()  # the unschedulable machines without which the task can never fit now


    project: str | None = None
    used: int = 0
    guaranteed: int = 0
    borrowable: int = 0


class FreeBlocks:
    """The free SKUs of a VC's schedulable machines, bucketed by size so best fit is cheap.

    ``take`` changes the blocks; everything else only reads them.
    """

    def __init__(self, machines):
        self._free = {}
        self._buckets = defaultdict(list)  # free SKUs -> sorted [(machine name, machine id)]
        self._names = {}
        self.total = 0
        for machine in machines:
            if machine.schedulable:
                self._names[machine.id] = machine.name
                if machine.free > 0:
                    self._free[machine.id] = machine.free
                    self._buckets[machine.free].append((machine.name, machine.id))
                    self.total += machine.free
        for bucket in self._buckets.values():
            bucket.sort()

    def instances_fitting(self, sku_count):
        """How many instances of ``sku_count`` SKUs the machines could host together."""
        return sum((free // sku_count) * len(bucket) for free, bucket in self._buckets.items() if free >= sku_count)

    def can_fit(self, demand):
        return self.total >= demand.total and self.instances_fitting(demand.sku_count) >= demand.replicas

    def largest(self):
        """(free SKUs, machine name) of the largest free block; (0, None) when nothing is free."""
        sizes = [free for free, bucket in self._buckets.items() if bucket]
        if not sizes:
            return 0, None
        size = max(sizes)
        return size, self._buckets[size][0][0]

    def take(self, demand):
        """Best-fit machine ids for every replica (taken from the blocks), or None if it does not fit."""
        if not self.can_fit(demand):
            return None
        need = demand.sku_count
        chosen = []
        for _replica in range(demand.replicas):
            size = min(free for free, bucket in self._buckets.items() if bucket and free >= need)
            name, machine_id = self._buckets[size].pop(0)
            left = size - need
            if left:
                insort(self._buckets[left], (name, machine_id))
                self._free[machine_id] = left
            else:
                del self._free[machine_id]
            self.total -= need
            chosen.append(machine_id)
        return chosen


    def give(self, machine_id, skus):
        """``skus`` freed on a schedulable machine (a killed task's): they are free blocks again."""
        if machine_id not in self._names or skus <= 0:
            return
        name, before = self._names[machine_id], self._free.get(machine_id, 0)
        if before:
            self._buckets[before].remove((name, machine_id))
        self._free[machine_id] = before + skus
        insort(self._buckets[before + skus], (name, machine_id))
        self.total += skus

    def now(self, machines):
        """``machines`` as these blocks leave them: the SKUs used grow by what was taken, shrink by what was given."""
        return [
            Machine(m.id, m.name, m.capacity, m.capacity - self._free.get(m.id, 0), True) if m.schedulable else m
            for m in machines
        ]


class Capacity:
    """What a VC's machines could host if all were empty: decides ``never_fits``."""

    def __init__(self, machines, *, schedulable_only=False):
        self._sizes = defaultdict(int)
        for machine in machines:
            if machine.schedulable or not schedulable_only:
                self._sizes[machine.capacity] += 1
        self.largest = max(self._sizes, default=0)

    def instances_fitting(self, sku_count):
        return sum((size // sku_count) * count for size, count in self._sizes.items())

    def can_fit(self, demand):
        return self.instances_fitting(demand.sku_count) >= demand.replicas

    def never_fits(self, demand, *, ahead=0):
        """A ``never_fits`` Wait when ``demand`` could not fit even on these machines empty, else None."""
        if self.can_fit(demand):
            return None
        return Wait(
            code=WaitCode.NEVER_FITS, sku_count=demand.sku_count, replicas=demand.replicas, ahead=ahead,
            ever_fitting_instances=self.instances_fitting(demand.sku_count), largest_capacity=self.largest,
        )


def never_fits(machines, demand):
    """A Wait saying ``demand`` could not fit even on the empty VC (every machine), or None if it could."""
    return Capacity(machines).never_fits(demand)


def why_not(blocks, demand, *, ahead=0):
    """Why ``demand`` does not fit ``blocks`` now: ``fragmented`` or ``capacity``, with the numbers."""
    largest, machine = blocks.largest()
    code = WaitCode.FRAGMENTED if blocks.total >= demand.total else WaitCode.CAPACITY
    return Wait(
        code=code, sku_count=demand.sku_count, replicas=demand.replicas, ahead=ahead, free_total=blocks.total,
        largest_free=largest, largest_machine=machine, fitting_instances=blocks.instances_fitting(demand.sku_count),
    )
