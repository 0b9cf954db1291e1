"""Placement over plain data: best fit, all-or-nothing, and the reasons in numbers and words."""

from hypothesis import given
from hypothesis import strategies as st

from scheduler.placement import Demand, FreeBlocks, Machine, WaitCode, never_fits, why_not
from scheduler.reasons import wait_text


def machines(*frees, capacity=8):
    return [Machine(i, f"node-{i:02d}", capacity, capacity - free) for i, free in enumerate(frees)]


def test_best_fit_prefers_the_machine_that_leaves_the_least_room():
    nodes = machines(8, 3, 5, 2)
    assert FreeBlocks(nodes).take(Demand(2)) == [3]  # free 2: leaves nothing
    assert FreeBlocks(nodes).take(Demand(3)) == [1]
    assert FreeBlocks(nodes).take(Demand(4)) == [2]


def test_replicas_are_all_or_nothing_and_may_share_a_machine():
    nodes = machines(4, 2)
    assert FreeBlocks(nodes).take(Demand(2, replicas=3)) == [1, 0, 0]
    assert FreeBlocks(nodes).take(Demand(2, replicas=4)) is None
    assert FreeBlocks(nodes).take(Demand(3, replicas=2)) is None  # 6 SKUs free, but only one block of 3


def test_cordoned_machines_take_nothing_and_ties_go_by_name():
    nodes = [Machine(1, "b", 8, 4), Machine(2, "a", 8, 4), Machine(3, "c", 8, 0, schedulable=False)]
    assert FreeBlocks(nodes).take(Demand(4)) == [2]
    assert FreeBlocks(nodes).take(Demand(8)) is None


def test_why_not_tells_fragmented_from_capacity_with_the_largest_block():
    blocks = FreeBlocks(machines(2, 1, 2))
    fragmented = why_not(blocks, Demand(4), ahead=3)
    assert (fragmented.code, fragmented.largest_free, fragmented.largest_machine) == (WaitCode.FRAGMENTED, 2, "node-00")
    assert wait_text(fragmented) == "needs 4 SKUs on one machine; largest free block is 2 on node-00; 3 tasks ahead"
    capacity = why_not(blocks, Demand(2, replicas=3))
    assert capacity.code == WaitCode.CAPACITY
    assert wait_text(capacity) == "needs 6 SKUs in total; 5 free; 0 tasks ahead"


def test_never_fits_counts_every_machine_even_cordoned_ones():
    nodes = [Machine(1, "a", 8, 8), Machine(2, "b", 4, 0, schedulable=False)]
    assert never_fits(nodes, Demand(8)) is None
    assert never_fits(nodes, Demand(4, replicas=3)) is None
    too_big = never_fits(nodes, Demand(9))
    assert too_big.code == WaitCode.NEVER_FITS
    assert "the largest machine offers 8" in wait_text(too_big)
    too_many = never_fits(nodes, Demand(4, replicas=4))
    assert "could host only 3" in wait_text(too_many)
    assert "has no machines" in wait_text(never_fits([], Demand(1)))


@given(
    frees=st.lists(st.integers(0, 8), min_size=1, max_size=8),
    sku_count=st.integers(1, 8),
    replicas=st.integers(1, 6),
)
def test_place_is_all_or_nothing_and_never_over_allocates(frees, sku_count, replicas):
    nodes = machines(*frees)
    chosen = FreeBlocks(nodes).take(Demand(sku_count, replicas))
    can = sum(free // sku_count for free in frees) >= replicas
    assert (chosen is not None) == can
    if chosen is not None:
        assert len(chosen) == replicas
        for node in nodes:
            assert chosen.count(node.id) * sku_count <= node.free
