"""Victim choice over plain data, checked against brute force: minimal, fewest, most recently started."""

from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.placement import Demand, Machine, WaitCode
from scheduler.victims import Holder, choose_victims


def world(holders, capacities, cordoned=()):
    used = {}
    for holder in holders:
        for machine_id, skus in holder.instances:
            used[machine_id] = used.get(machine_id, 0) + skus
    return [
        Machine(i, f"node-{i}", cap, used.get(i, 0), schedulable=i not in cordoned) for i, cap in enumerate(capacities)
    ]


def fits_without(machines, holders, gone, demand):
    freed = {}
    for holder in holders:
        if holder.task_id in gone:
            for machine_id, skus in holder.instances:
                freed[machine_id] = freed.get(machine_id, 0) + skus
    free = [m.capacity - m.used + freed.get(m.id, 0) for m in machines if m.schedulable]
    return sum(f // demand.sku_count for f in free) >= demand.replicas


def test_prefers_fewer_victims_over_recency():
    holders = [
        Holder(1, 1, ((0, 4),)), Holder(2, 2, ((0, 2),)), Holder(3, 3, ((0, 2),)),
    ]
    machines = world(holders, [8])
    choice = choose_victims(machines=machines, holders=holders, demand=Demand(4))
    assert choice.fits and choice.victims == (1,)  # one victim beats the two most recent
    assert choice.placement == (0,)


def test_among_equal_counts_kills_the_most_recently_started():
    holders = [Holder(1, 10, ((0, 4),)), Holder(2, 30, ((1, 4),)), Holder(3, 20, ((2, 4),))]
    machines = world(holders, [4, 4, 4])
    assert choose_victims(machines=machines, holders=holders, demand=Demand(4)).victims == (2,)
    assert choose_victims(machines=machines, holders=holders, demand=Demand(4, 2)).victims == (2, 3)


def test_nothing_to_kill_when_it_already_fits():
    holders = [Holder(1, 1, ((0, 4),))]
    choice = choose_victims(machines=world(holders, [8]), holders=holders, demand=Demand(4))
    assert choice.fits and choice.victims == () and choice.placement == (0,)


def test_refused_when_it_could_not_fit_on_the_empty_schedulable_machines():
    holders = [Holder(1, 1, ((0, 8),))]
    machines = world(holders, [8, 8], cordoned={1})
    choice = choose_victims(machines=machines, holders=holders, demand=Demand(8, 2))
    assert not choice.fits and choice.victims == ()
    assert choice.wait.code == WaitCode.NEVER_FITS and choice.wait.ever_fitting_instances == 1


def test_over_budget_the_greedy_choice_is_still_minimal_by_removal():
    holders = [Holder(i, i, ((i % 4, 1),)) for i in range(32)]
    machines = world(holders, [8, 8, 8, 8])
    choice = choose_victims(machines=machines, holders=holders, demand=Demand(8, 2), budget=10)
    assert choice.fits and len(choice.victims) == 16
    for victim in choice.victims:
        assert not fits_without(machines, holders, set(choice.victims) - {victim}, Demand(8, 2))


@st.composite
def scenarios(draw):
    capacities = draw(st.lists(st.integers(1, 8), min_size=1, max_size=4))
    room = list(capacities)
    holders = []
    for task_id in range(draw(st.integers(0, 7))):
        sku = draw(st.integers(1, 4))
        spots = [i for i, left in enumerate(room) if left >= sku]
        if not spots:
            continue
        chosen = draw(st.lists(st.sampled_from(spots), min_size=1, max_size=2))
        instances = []
        for machine_id in chosen:
            if room[machine_id] >= sku:
                room[machine_id] -= sku
                instances.append((machine_id, sku))
        if instances:
            holders.append(Holder(task_id, draw(st.integers(0, 5)), tuple(instances)))
    cordoned = set(draw(st.lists(st.integers(0, len(capacities) - 1), max_size=1)))
    demand = Demand(draw(st.integers(1, 8)), draw(st.integers(1, 3)))
    return world(holders, capacities, cordoned), holders, demand


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_choice_matches_brute_force(scenario):
    machines, holders, demand = scenario
    choice = choose_victims(machines=machines, holders=holders, demand=demand)
    everyone = {h.task_id for h in holders}
    assert choice.fits == fits_without(machines, holders, everyone, demand)
    if not choice.fits:
        return
    chosen = set(choice.victims)
    assert fits_without(machines, holders, chosen, demand)
    for victim in chosen:  # minimal by removal
        assert not fits_without(machines, holders, chosen - {victim}, demand)
    smallest = next(
        size for size in range(len(holders) + 1)
        if any(fits_without(machines, holders, {h.task_id for h in c}, demand) for c in combinations(holders, size))
    )
    assert len(chosen) == smallest  # fewest victims
    used = {}
    for machine_id in choice.placement:
        used[machine_id] = used.get(machine_id, 0) + demand.sku_count
    freed = {}
    for holder in holders:
        if holder.task_id in chosen:
            for machine_id, skus in holder.instances:
                freed[machine_id] = freed.get(machine_id, 0) + skus
    for machine in machines:
        assert used.get(machine.id, 0) <= machine.capacity - machine.used + freed.get(machine.id, 0)
        assert machine.schedulable or machine.id not in used


def test_over_budget_a_crowded_cluster_still_loses_the_fewest_tasks():
    """36 holders: one machine of eight small recent tasks, seven machines of four older 2-SKU tasks each."""
    holders = [Holder(100 + i, 1000 + i, ((0, 1),)) for i in range(8)]
    holders += [Holder(10 * m + j, 10 * m + j, ((m, 2),)) for m in range(1, 8) for j in range(4)]
    machines = world(holders, [8] * 8)
    choice = choose_victims(machines=machines, holders=holders, demand=Demand(8))
    # Four 2-SKU tasks of one machine, not the eight recent ones: the most recently started such machine (7).
    assert choice.victims == (73, 72, 71, 70) and choice.placement == (7,)


@st.composite
def crowded(draw, *, spanning):
    """Scenarios as above, where each holder may span two machines only when ``spanning``."""
    machines, holders, demand = draw(scenarios())
    if not spanning:
        holders = [Holder(h.task_id, h.started_at, h.instances[:1]) for h in holders]
        machines = world(holders, [m.capacity for m in machines], {m.id for m in machines if not m.schedulable})
    return machines, holders, demand


@settings(max_examples=150, deadline=None)
@given(crowded(spanning=True))
def test_over_budget_one_instance_gets_the_same_choice_as_the_exact_search(scenario):
    machines, holders, demand = scenario
    demand = Demand(demand.sku_count, 1)
    exact = choose_victims(machines=machines, holders=holders, demand=demand)
    assert choose_victims(machines=machines, holders=holders, demand=demand, budget=0) == exact


@settings(max_examples=150, deadline=None)
@given(crowded(spanning=False))
def test_over_budget_several_instances_lose_the_fewest_tasks_and_no_spare_one(scenario):
    machines, holders, demand = scenario
    exact = choose_victims(machines=machines, holders=holders, demand=demand)
    quick = choose_victims(machines=machines, holders=holders, demand=demand, budget=0)
    assert quick.fits == exact.fits and len(quick.victims) == len(exact.victims)
    for victim in quick.victims:
        assert not fits_without(machines, holders, set(quick.victims) - {victim}, demand)


def test_over_budget_replicas_sharing_a_machine_count_once():
    holders = [Holder(1, 1, ((0, 2), (0, 2))), Holder(2, 2, ((0, 4),)), Holder(3, 3, ((1, 8),))]
    machines = world(holders, [8, 8])
    exact = choose_victims(machines=machines, holders=holders, demand=Demand(4))
    assert choose_victims(machines=machines, holders=holders, demand=Demand(4), budget=0) == exact
    assert exact.victims == (3,)  # one victim either way: the most recently started


def test_over_budget_a_task_spread_over_machines_counts_once_and_the_choice_fits():
    """Found by review: a 3-replica holder over three machines made a candidate look as if it fit."""
    holders = [Holder(1, 1, ((1, 4),)), Holder(2, 2, ((0, 4),)), Holder(3, 3, ((2, 1),)),
               Holder(4, 4, ((0, 4), (2, 4), (1, 4))), Holder(5, 5, ((2, 1),))]
    holders += [Holder(100 + i, 0, ((3 + i // 8, 1),)) for i in range(24)]  # three machines of old 1-SKU tasks
    machines = world(holders, [8] * 6)
    exact = choose_victims(machines=machines, holders=holders, demand=Demand(8, 3), budget=10**9)
    quick = choose_victims(machines=machines, holders=holders, demand=Demand(8, 3))
    assert quick.fits and fits_without(machines, holders, set(quick.victims), Demand(8, 3))
    assert len(quick.victims) == len(exact.victims) and len(quick.placement) == 3


@settings(max_examples=400, deadline=None)
@given(crowded(spanning=True))
def test_over_budget_every_choice_fits_and_spares_no_one(scenario):
    machines, holders, demand = scenario
    quick = choose_victims(machines=machines, holders=holders, demand=demand, budget=0)
    if not quick.fits:
        return
    assert fits_without(machines, holders, set(quick.victims), demand) and len(quick.placement) == demand.replicas
    for victim in quick.victims:
        assert not fits_without(machines, holders, set(quick.victims) - {victim}, demand)
