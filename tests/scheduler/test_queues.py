"""The queue of one VC decided: strict and best-effort FIFO, the pinned barrier, positions and reasons."""

from scheduler.placement import Machine, WaitCode
from scheduler.queues import BEST_EFFORT_FIFO, STRICT_FIFO, QueuedTask, plan_queue
from scheduler.reasons import wait_text

NODES = [Machine(1, "node-01", 8, 6), Machine(2, "node-02", 8, 4)]  # free: 2 and 4


def queue(*sizes, pinned=()):
    return [QueuedTask(i, f"t{i}", size, 1, i in pinned) for i, size in enumerate(sizes, start=1)]


def test_strict_fifo_never_overtakes_the_head():
    plan = plan_queue(machines=NODES, queue=queue(4, 8, 2), policy=STRICT_FIFO, explain=True)
    assert plan.placements == {1: [2]}
    assert plan.waits[2].code == WaitCode.CAPACITY
    assert plan.waits[3].code == WaitCode.BEHIND_HEAD and plan.waits[3].blocker == "t2"
    assert plan.positions == {1: 1, 2: 2, 3: 3}
    assert wait_text(plan.waits[3]) == "strict FIFO: waits behind “t2” at the head of the queue; 2 tasks ahead"


def test_best_effort_lets_a_later_task_that_fits_start():
    plan = plan_queue(machines=NODES, queue=queue(6, 2, 4), policy=BEST_EFFORT_FIFO, explain=True)
    assert plan.placements == {2: [1], 3: [2]}
    assert plan.waits[1].code == WaitCode.FRAGMENTED
    assert plan.waits[2].code == WaitCode.PLACEABLE  # still queued until the pass writes it
    assert plan.positions == {1: 1, 2: 2, 3: 3}


def test_a_pinned_task_that_does_not_fit_is_a_barrier_even_under_best_effort():
    plan = plan_queue(machines=NODES, queue=queue(8, 2, pinned={1}), policy=BEST_EFFORT_FIFO, explain=True)
    assert plan.placements == {}
    assert plan.waits[2].code == WaitCode.BEHIND_PINNED and plan.waits[2].blocker == "t1"


def test_a_pinned_task_that_fits_starts_and_the_policy_applies_again():
    plan = plan_queue(machines=NODES, queue=queue(4, 8, 2, pinned={1}), policy=BEST_EFFORT_FIFO)
    assert plan.placements == {1: [2], 3: [1]}


def test_a_task_that_can_never_fit_does_not_block_a_strict_queue():
    plan = plan_queue(machines=NODES, queue=queue(9, 2), policy=STRICT_FIFO, explain=True)
    assert plan.placements == {2: [1]}
    assert plan.waits[1].code == WaitCode.NEVER_FITS


def test_a_held_external_port_makes_the_task_wait():
    tasks = [QueuedTask(1, "a", 2, 1, external_port=30001), QueuedTask(2, "b", 2, 1, external_port=30001)]
    plan = plan_queue(machines=NODES, queue=tasks, policy=STRICT_FIFO, ports_in_use={30001}, explain=True)
    assert plan.placements == {}
    assert plan.waits[1].code == WaitCode.PORT_IN_USE
    # Two queued tasks asking for one free port: only the first gets it.
    plan = plan_queue(machines=NODES, queue=tasks, policy=STRICT_FIFO)
    assert list(plan.placements) == [1]


def test_a_head_waiting_for_its_port_is_not_overtaken_under_strict_fifo():
    tasks = [QueuedTask(1, "a", 2, 1, external_port=30001), QueuedTask(2, "b", 2, 1)]
    plan = plan_queue(machines=NODES, queue=tasks, policy=STRICT_FIFO, ports_in_use={30001}, explain=True)
    assert plan.placements == {}
    assert plan.waits[2].code == WaitCode.BEHIND_HEAD and plan.waits[2].blocker == "a"


def test_a_task_waiting_for_its_port_is_overtaken_under_best_effort_unless_pinned():
    tasks = [QueuedTask(1, "a", 2, 1, external_port=30001), QueuedTask(2, "b", 2, 1)]
    plan = plan_queue(machines=NODES, queue=tasks, policy=BEST_EFFORT_FIFO, ports_in_use={30001})
    assert list(plan.placements) == [2]
    tasks[0] = QueuedTask(1, "a", 2, 1, pinned=True, external_port=30001)
    plan = plan_queue(machines=NODES, queue=tasks, policy=BEST_EFFORT_FIFO, ports_in_use={30001}, explain=True)
    assert plan.placements == {}
    assert plan.waits[2].code == WaitCode.BEHIND_PINNED


def test_a_pinned_task_that_can_never_fit_still_blocks():
    plan = plan_queue(machines=NODES, queue=queue(9, 2, pinned={1}), policy=BEST_EFFORT_FIFO, explain=True)
    assert plan.placements == {}
    assert plan.waits[2].code == WaitCode.BEHIND_PINNED and plan.waits[2].blocker == "t1"


def test_without_explain_the_pass_stops_at_the_barrier_with_the_same_placements():
    tasks = queue(2, 8, 2, 2)
    quick = plan_queue(machines=NODES, queue=tasks, policy=STRICT_FIFO)
    full = plan_queue(machines=NODES, queue=tasks, policy=STRICT_FIFO, explain=True)
    assert quick.placements == full.placements == {1: [1]}
    assert quick.waits == {}
