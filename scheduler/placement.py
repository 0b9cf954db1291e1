"""Placement: where a task's replicas go, or why they cannot go anywhere now (pure, STYLE.md §7).

Plain data in, plain data out: no database, no clock. A task is placed all-or-nothing: every
replica on one schedulable machine with ``sku_count`` free SKUs, each replica on the machine that
leaves the least room (best fit), ties broken by machine name.

Replicas of one task are identical, so a task fits exactly when the machines together can host
``replicas`` blocks of ``sku_count`` (``sum(free // sku_count)``); greedy best fit never turns a
fitting task into a failing one, which is why feasibility and the choice of machines agree.
"""

from bisect import insort
from collections import defaultdict
from dataclasses import dataclass

from deploy_portal.sentences import N_, NP_, Sentence, joined


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
    port: int | None = None

    def sentence(self):
        """The reason, said in each reader's language when stored (deploy_portal.sentences)."""
        return wait_text(self)

    def text(self):
        """The reason in words of the active language."""
        return str(wait_text(self))


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
            if machine.schedulable and machine.free > 0:
                self._free[machine.id] = machine.free
                self._names[machine.id] = machine.name
                self._buckets[machine.free].append((machine.name, machine.id))
                self.total += machine.free
        for bucket in self._buckets.values():
            bucket.sort()

    def free_of(self, machine_id):
        return self._free.get(machine_id, 0)

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


def place(machines, demand):
    """Best-fit machine ids for each replica of ``demand`` on ``machines`` now, or None."""
    return FreeBlocks(machines).take(demand)


def never_fits(machines, demand):
    """A Wait saying ``demand`` could not fit even on the empty VC (every machine), or None if it could."""
    capacity = Capacity(machines)
    if capacity.can_fit(demand):
        return None
    return Wait(
        code=WaitCode.NEVER_FITS, sku_count=demand.sku_count, replicas=demand.replicas,
        ever_fitting_instances=capacity.instances_fitting(demand.sku_count), largest_capacity=capacity.largest,
    )


def why_not(blocks, demand, *, ahead=0):
    """Why ``demand`` does not fit ``blocks`` now: ``fragmented`` or ``capacity``, with the numbers."""
    largest, machine = blocks.largest()
    code = WaitCode.FRAGMENTED if blocks.total >= demand.total else WaitCode.CAPACITY
    return Wait(
        code=code, sku_count=demand.sku_count, replicas=demand.replicas, ahead=ahead, free_total=blocks.total,
        largest_free=largest, largest_machine=machine, fitting_instances=blocks.instances_fitting(demand.sku_count),
    )


def _ahead(count):
    return Sentence(NP_("%(count)s task ahead", "%(count)s tasks ahead"), number="count", count=count)


def _needs(wait):
    if wait.replicas == 1:
        return Sentence(
            NP_("needs %(sku)s SKU on one machine", "needs %(sku)s SKUs on one machine"), number="sku", sku=wait.sku_count
        )
    return Sentence(
        N_("needs %(replicas)s instances of %(sku)s SKUs, each on one machine"), replicas=wait.replicas, sku=wait.sku_count
    )


def never_fits_text(wait):
    """Why a task could never fit, as a Sentence: "needs 9 SKUs on one machine, but the largest machine offers 8"."""
    if wait.largest_capacity == 0:
        return Sentence(N_("needs %(sku)s SKUs on one machine, but the virtual cluster has no machines"), sku=wait.sku_count)
    if wait.sku_count > wait.largest_capacity:
        return Sentence(
            N_("needs %(sku)s SKUs on one machine, but the largest machine offers %(largest)s"),
            sku=wait.sku_count, largest=wait.largest_capacity,
        )
    return Sentence(
        N_("%(needs)s, but even empty the machines could host only %(count)s"),
        needs=_needs(wait), count=wait.ever_fitting_instances,
    )


def wait_text(wait):
    """The reason as a Sentence, e.g. "needs 4 SKUs on one machine; largest free block is 2 on node-07; 3 tasks ahead"."""
    if wait.code == WaitCode.NEVER_FITS:
        return Sentence(N_("can never fit: %(why)s"), why=never_fits_text(wait))
    if wait.code == WaitCode.BEHIND_PINNED:
        parts = [Sentence(N_("waits behind the pinned task “%(task)s”"), task=wait.blocker)]
    elif wait.code == WaitCode.BEHIND_HEAD:
        parts = [Sentence(N_("strict FIFO: waits behind “%(task)s” at the head of the queue"), task=wait.blocker)]
    elif wait.code == WaitCode.PORT_IN_USE:
        parts = [Sentence(N_("external port %(port)s is in use by another task"), port=wait.port)]
    elif wait.code == WaitCode.PLACEABLE:
        parts = [Sentence(N_("GPUs are free; starting shortly"))]
    elif wait.code == WaitCode.FRAGMENTED:
        if wait.largest_machine is None:
            largest = Sentence(N_("no machine has a free SKU"))
        else:
            largest = Sentence(
                N_("largest free block is %(size)s on %(machine)s"), size=wait.largest_free, machine=wait.largest_machine
            )
        parts = [_needs(wait), largest]
        if wait.replicas > 1:
            parts.append(Sentence(N_("free blocks fit %(count)s"), count=wait.fitting_instances))
    else:
        parts = [
            Sentence(
                N_("needs %(needed)s SKUs in total; %(free)s free"),
                needed=wait.sku_count * wait.replicas, free=wait.free_total,
            )
        ]
    return joined(*parts, _ahead(wait.ahead), sep="; ")
