"""Victims of a force start: which holding tasks of the VC to kill so the pinned task fits (pure).

The choice is minimal by removal (sparing any one victim would leave the task unable to fit). Among
such choices it prefers fewer victims, then the most recently started ones: candidate sets are tried
by size, and within one size in the order of ``itertools.combinations`` over the holders ranked most
recently started first, so the first set that fits is the preferred one.

When the holders are so many that this exact search would exceed ``budget`` fit checks, machines are
looked at one by one instead — what a machine's holders free is what makes room on it:

- one instance (the usual force start) fits once one machine has room, so the best set lies among the
  holders of one machine: its largest holders first give the fewest, and the machines that need the
  fewest are searched exactly for the preferred set of that size (exact again, budget allowing);
- several instances: per machine, the fewest holders (largest first) for each number of blocks it could
  offer, combined over machines for the fewest in all;
- and the greedy choice (most recently started first until the task fits).

Each candidate is pruned by removal (so the result stays minimal by removal), and the preferred one wins.
"""

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from math import comb

from .placement import Capacity, FreeBlocks, Machine, Wait

SEARCH_BUDGET = 20_000
# The sets of one size among one machine's holders are few (a machine holds a handful of tasks): searched
# even when the whole search is over budget.
MACHINE_SEARCH_FLOOR = 256


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
    short: bool = False  # it would fit the empty VC, but not with every one of ``holders`` killed (others stay)


def _blocks(free, sku_count):
    """Instances of ``sku_count`` SKUs that ``free`` SKUs of one machine host."""
    return max(0, free) // sku_count


def _gained(free, sku_count, before, after):
    """The blocks a machine with ``free`` SKUs gains when what its victims free grows from ``before`` to ``after``."""
    return _blocks(free + after, sku_count) - _blocks(free + before, sku_count)


class _Fit:
    """Answers "does the demand fit if these holders are gone" by adjusting a precomputed count."""

    def __init__(self, machines, demand):
        self.demand = demand
        self.free = {m.id: m.capacity - m.used for m in machines if m.schedulable}
        self.base = sum(_blocks(free, demand.sku_count) for free in self.free.values())

    def fits(self, holders):
        freed = {}
        for holder in holders:
            for machine_id, skus in holder.instances:
                if machine_id in self.free:
                    freed[machine_id] = freed.get(machine_id, 0) + skus
        k = self.demand.sku_count
        count = self.base + sum(_gained(self.free[machine_id], k, 0, extra) for machine_id, extra in freed.items())
        return count >= self.demand.replicas

    def tally(self, holders=()):
        return _Tally(self, holders)


class _Tally:
    """A victim set grown or shrunk one holder at a time, knowing whether the demand fits: for long lists."""

    def __init__(self, check, holders):
        self.check, self.freed, self.count = check, {}, check.base
        for holder in holders:
            self.add(holder)

    def _change(self, holder, sign):
        k, free = self.check.demand.sku_count, self.check.free
        for machine_id, skus in holder.instances:
            if machine_id in free:
                before = self.freed.get(machine_id, 0)
                self.freed[machine_id] = after = before + sign * skus
                self.count += _gained(free[machine_id], k, before, after)

    def add(self, holder):
        self._change(holder, 1)

    def remove(self, holder):
        self._change(holder, -1)

    @property
    def fits(self):
        return self.count >= self.check.demand.replicas


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


def _pruned(check, chosen, ranked):
    """``chosen`` less every holder it can spare, the longest-running first (we would rather kill recent ones)."""
    chosen = [h for h in ranked if h in chosen]
    tally = check.tally(chosen)
    spared = set()
    for holder in reversed(chosen):
        tally.remove(holder)
        if tally.fits:
            spared.add(holder)
        else:
            tally.add(holder)
    return [h for h in chosen if h not in spared]


def _greedy(check, ordered):
    """The first holders of ``ordered`` until the demand fits (all of them if it never does)."""
    tally, chosen = check.tally(), []
    for holder in ordered:
        chosen.append(holder)
        tally.add(holder)
        if tally.fits:
            break
    return chosen


def _by_machine(ranked):
    """{machine id: [(holder, SKUs it holds there)]}, each list in rank order."""
    held = defaultdict(dict)  # replicas of one task may share a machine: one entry, their SKUs summed
    for holder in ranked:
        for machine_id, skus in holder.instances:
            held[machine_id][holder] = held[machine_id].get(holder, 0) + skus
    return {machine_id: list(on.items()) for machine_id, on in held.items()}


def _largest_first(on):
    """A machine's holders, the most SKUs on it first (then the most recently started: ``on`` is ranked)."""
    return [holder for holder, _skus in sorted(on, key=lambda pair: -pair[1])]


def _one_machine(check, held, budget):
    """For one instance: the preferred set among the holders of one machine, over every machine.

    Taking a machine's largest holders first needs the fewest of them, so it says at once which machines
    can do with the fewest; only those are searched for the preferred set of that size (budget allowing).
    """
    fewest = {}
    for machine_id in check.free:
        on = held.get(machine_id, [])
        chosen = _greedy(check, _largest_first(on))
        if on and check.fits(chosen):
            fewest[machine_id] = chosen
    if not fewest:
        return []
    size = min(len(chosen) for chosen in fewest.values())
    found = []
    for machine_id, chosen in fewest.items():
        if len(chosen) != size:
            continue
        on = [holder for holder, _skus in held[machine_id]]
        if comb(len(on), size) <= max(budget, MACHINE_SEARCH_FLOOR):
            chosen = next((list(c) for c in combinations(on, size) if check.fits(c)), chosen)
        found.append(chosen)
    return found


def _blocks_by_machine(check, held):
    """For several instances: the fewest holders, machine by machine, for the blocks the demand needs in all."""
    k, need = check.demand.sku_count, check.demand.replicas - check.base
    best = {0: (0, [])}  # blocks gained so far -> (victims, holders)
    for machine_id, free in check.free.items():
        options = {}
        taken, freed = [], 0
        for holder, skus in sorted(held.get(machine_id, []), key=lambda pair: -pair[1]):
            taken.append(holder)
            freed += skus
            gained = _gained(free, k, 0, freed)
            if gained and gained not in options:
                options[gained] = list(taken)
        merged = dict(best)
        for have, (count, chosen) in best.items():
            for gained, holders in options.items():
                # A task with replicas on several machines is one victim, whatever it frees where.
                combined = chosen + [holder for holder in holders if holder not in chosen]
                total = min(need, have + gained)
                if total not in merged or len(combined) < merged[total][0]:
                    merged[total] = (len(combined), combined)
        best = merged
    # The blocks are counted machine by machine: only a set that truly fits is a candidate.
    return [chosen for _count, chosen in best.values() if check.fits(chosen)]


def _preferred(check, ranked, budget):
    """Over budget: the preferred of the candidates above, each pruned by removal."""
    held = _by_machine(ranked)
    candidates = [_greedy(check, ranked), *_blocks_by_machine(check, held)]
    if check.demand.replicas == 1:
        candidates += _one_machine(check, held, budget)
    rank = {holder.task_id: i for i, holder in enumerate(ranked)}

    def preference(chosen):  # fewer first, then the order the exact search tries sets of one size in
        return len(chosen), sorted(rank[h.task_id] for h in chosen)

    pruned = [_pruned(check, set(chosen), ranked) for chosen in candidates if check.fits(set(chosen))]
    return min(pruned, key=preference)


def choose_victims(*, machines, holders, demand, budget=SEARCH_BUDGET):
    """Choose the tasks to kill so ``demand`` fits the VC's schedulable ``machines``.

    ``machines`` carry the SKUs used by every holding instance; ``holders`` are the tasks that may be killed
    (all of them, or only some: what the others hold stays held). Refused (``fits=False``, nothing to kill) when
    the demand could not fit even on the empty VC (``wait`` says why), or not even with every one of ``holders``
    killed (``short``).
    """
    hopeless = Capacity(machines, schedulable_only=True).never_fits(demand)
    if hopeless is not None:
        return VictimChoice(fits=False, wait=hopeless)
    check = _Fit(machines, demand)
    victims = []
    if not check.fits(()):
        schedulable = {m.id for m in machines if m.schedulable}
        useful = [h for h in holders if any(machine_id in schedulable for machine_id, _ in h.instances)]
        if not check.fits(useful):
            return VictimChoice(fits=False, short=True)
        ranked = _ranked(useful)
        victims = _search(check, ranked, budget)
        if victims is None:
            victims = _preferred(check, ranked, budget)
    freed = {}
    for holder in victims:
        for machine_id, skus in holder.instances:
            freed[machine_id] = freed.get(machine_id, 0) + skus
    after = [
        Machine(m.id, m.name, m.capacity, max(0, m.used - freed.get(m.id, 0)), m.schedulable) for m in machines
    ]
    placement = FreeBlocks(after).take(demand)
    return VictimChoice(fits=True, victims=tuple(h.task_id for h in _ranked(victims)), placement=tuple(placement))
