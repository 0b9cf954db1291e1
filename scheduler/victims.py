"""Victims of a force start: which holding tasks of the VC to kill so the pinned task fits (pure).

The choice is minimal by removal (sparing any one victim would leave the task unable to fit). Among
such choices it prefers fewer victims, then the most recently started ones: candidate sets are tried
by size, and within one size in the order of ``itertools.combinations`` over the holders ranked most
recently started first, so the first set that fits is the preferred one. When the holders are so
many that this exact search would exceed ``budget`` fit checks, a greedy choice (most recently started
first until the task fits) is pruned by removal instead, which keeps the result minimal by removal.
"""

from dataclasses import dataclass
from itertools import combinations
from math import comb

from .placement import Capacity, FreeBlocks, Machine, Wait, WaitCode

SEARCH_BUDGET = 20_000


@dataclass(frozen=True)
class Holder:
    """A task holding SKUs: when it started (any comparable value) and its instances as (machine id, SKUs)."""

    task_id: int
    started_at: object
    instances: tuple


@dataclass(frozen=True)
class VictimChoice:
    """``fits``: the task can start once ``victims`` (task ids, most recently started first) are killed,
    on ``placement`` (one machine id per replica). Otherwise ``wait`` says why it never could."""

    fits: bool
    victims: tuple = ()
    placement: tuple = ()
    wait: Wait | None = None


class _Fit:
    """Answers "does the demand fit if these holders are gone" by adjusting a precomputed count."""

    def __init__(self, machines, demand):
        self.demand = demand
        self.free = {m.id: m.capacity - m.used for m in machines if m.schedulable}
        k = demand.sku_count
        self.base = sum(max(0, free) // k for free in self.free.values())

    def fits(self, holders):
        freed = {}
        for holder in holders:
            for machine_id, skus in holder.instances:
                if machine_id in self.free:
                    freed[machine_id] = freed.get(machine_id, 0) + skus
        k = self.demand.sku_count
        count = self.base
        for machine_id, extra in freed.items():
            before = self.free[machine_id]
            count += max(0, before + extra) // k - max(0, before) // k
        return count >= self.demand.replicas


def _ranked(holders):
    return sorted(holders, key=lambda h: (h.started_at is not None, h.started_at, h.task_id), reverse=True)


def _search(check, ranked, budget):
    """The smallest set that fits, preferring the most recently started; None when over budget."""
    spent = 0
    for size in range(1, len(ranked) + 1):
        spent += comb(len(ranked), size)
        if spent > budget:
            return None
        for chosen in combinations(ranked, size):
            if check.fits(chosen):
                return list(chosen)
    return None


def _greedy(check, ranked):
    chosen = []
    for holder in ranked:
        chosen.append(holder)
        if check.fits(chosen):
            break
    # Spare the longest-running first: we would rather kill the most recently started.
    for holder in reversed(list(chosen)):
        rest = [h for h in chosen if h is not holder]
        if check.fits(rest):
            chosen = rest
    return chosen


def choose_victims(*, machines, holders, demand, budget=SEARCH_BUDGET):
    """Choose the tasks to kill so ``demand`` fits the VC's schedulable ``machines``.

    ``machines`` carry the SKUs used by every holding instance; ``holders`` are the tasks holding them.
    Refused (``fits=False``, nothing to kill) when the demand could not fit even on the empty VC.
    """
    empty = Capacity(machines, schedulable_only=True)
    if not empty.can_fit(demand):
        return VictimChoice(fits=False, wait=Wait(
            code=WaitCode.NEVER_FITS, sku_count=demand.sku_count, replicas=demand.replicas,
            ever_fitting_instances=empty.instances_fitting(demand.sku_count), largest_capacity=empty.largest,
        ))
    check = _Fit(machines, demand)
    victims = []
    if not check.fits(()):
        schedulable = {m.id for m in machines if m.schedulable}
        useful = [h for h in holders if any(machine_id in schedulable for machine_id, _ in h.instances)]
        ranked = _ranked(useful)
        victims = _search(check, ranked, budget)
        if victims is None:
            victims = _greedy(check, ranked)
    freed = {}
    for holder in victims:
        for machine_id, skus in holder.instances:
            freed[machine_id] = freed.get(machine_id, 0) + skus
    after = [
        Machine(m.id, m.name, m.capacity, max(0, m.used - freed.get(m.id, 0)), m.schedulable) for m in machines
    ]
    placement = FreeBlocks(after).take(demand)
    return VictimChoice(fits=True, victims=tuple(h.task_id for h in _ranked(victims)), placement=tuple(placement))
