"""Quotas, priorities, fair share and reclaim in the pure plan (scheduler.queues), against hand-worked cases."""

from django.utils import translation

from scheduler.placement import Machine, WaitCode
from scheduler.queues import (
    BEST_EFFORT_FIFO,
    FAIR_SHARE,
    STRICT_FIFO,
    QueuedTask,
    Quota,
    borrowed,
    insert_arrival,
    plan_queue,
)
from scheduler.reasons import wait_sentence, wait_text
from scheduler.victims import Holder

A, B, C = 1, 2, 3  # project ids


def task(i, sku, project, *, pinned=False, priority=0, replicas=1):
    return QueuedTask(i, f"t{i}", sku, replicas, pinned, None, project, priority)


def test_without_quotas_the_plan_is_todays_fifo():
    machines = [Machine(1, "m1", 8, 4)]
    queue = [task(1, 8, A), task(2, 2, B)]
    assert plan_queue(machines=machines, queue=queue, policy=STRICT_FIFO).placements == {}
    assert plan_queue(machines=machines, queue=queue, policy=BEST_EFFORT_FIFO).placements == {2: [1]}


def test_a_project_within_its_guarantee_goes_before_an_earlier_borrower_even_under_strict_fifo():
    machines = [Machine(1, "m1", 8, 4)]  # 4 SKUs free
    quotas = {A: Quota("proj-a", 4), B: Quota("proj-b", 4)}
    # B already uses its 4: its task would borrow; A's later task is within A's guarantee.
    queue = [task(1, 4, B), task(2, 4, A)]
    plan = plan_queue(machines=machines, queue=queue, policy=STRICT_FIFO, quotas=quotas, usage={B: 4}, explain=True)
    assert plan.placements == {2: [1]}
    assert plan.positions == {2: 1, 1: 2}
    assert plan.waits[1].code == WaitCode.CAPACITY  # B's borrower waits: A took the SKUs it is guaranteed


def test_a_borrower_takes_idle_skus_up_to_its_limit():
    machines = [Machine(1, "m1", 8, 0), Machine(2, "m2", 8, 0)]
    quotas = {A: Quota("proj-a", 4, borrowing_limit=4)}
    queue = [task(1, 4, A), task(2, 4, A), task(3, 4, A)]
    plan = plan_queue(machines=machines, queue=queue, policy=BEST_EFFORT_FIFO, quotas=quotas, explain=True)
    assert set(plan.placements) == {1, 2}
    wait = plan.waits[3]
    assert wait.code == WaitCode.QUOTA and (wait.used, wait.guaranteed, wait.borrowable) == (8, 4, 0)
    assert wait_text(wait) == (
        "project proj-a has used 8/4 SKUs (guaranteed quota), may borrow 0; needs 4 SKUs on one machine; 2 tasks ahead"
    )


def test_the_quota_reason_in_chinese():
    machines = [Machine(1, "m1", 32, 0)]
    quotas = {A: Quota("proj-a", 16, borrowing_limit=0)}
    plan = plan_queue(machines=machines, queue=[task(1, 1, A)], policy=STRICT_FIFO, quotas=quotas, usage={A: 16}, explain=True)
    with translation.override("zh-hans"):
        assert wait_sentence(plan.waits[1]).render().startswith("项目 proj-a 已用 16/16 SKU（保障额度），可借用 0")


def test_a_borrower_over_its_limit_does_not_hold_back_other_projects():
    machines = [Machine(1, "m1", 8, 0)]
    quotas = {A: Quota("proj-a", 0, borrowing_limit=0)}
    plan = plan_queue(machines=machines, queue=[task(1, 2, A), task(2, 2, B)], policy=STRICT_FIFO, quotas=quotas)
    assert plan.placements == {2: [1]}


def test_a_barrier_of_the_first_sweep_holds_in_the_second():
    machines = [Machine(1, "m1", 8, 6)]  # 2 SKUs free
    quotas = {A: Quota("proj-a", 8), B: Quota("proj-b", 0)}
    plan = plan_queue(machines=machines, queue=[task(1, 1, B), task(2, 4, A)], policy=STRICT_FIFO, quotas=quotas,
                      explain=True)
    assert plan.placements == {}  # A's head waits within its guarantee: strict FIFO lets nothing pass it
    assert plan.waits[1].code == WaitCode.BEHIND_HEAD and plan.waits[1].blocker == "t2"


def test_priorities_order_the_queue_after_the_pinned_task():
    queue = [task(1, 1, A, pinned=True), task(2, 1, A, priority=0), task(3, 1, A, priority=0)]
    insert_arrival(queue, task(4, 1, A, priority=10))
    insert_arrival(queue, task(5, 1, A, priority=0))
    insert_arrival(queue, task(6, 1, A, priority=-5))
    insert_arrival(queue, task(7, 1, A, priority=10))
    assert [t.id for t in queue] == [1, 4, 7, 2, 3, 5, 6]


def test_fair_share_takes_from_the_project_with_the_lowest_dominant_share():
    machines = [Machine(1, "m1", 8, 2)]  # 6 SKUs free
    quotas = {A: Quota("proj-a", 8), B: Quota("proj-b", 4)}
    queue = [task(1, 1, B), task(2, 1, B), task(3, 2, A), task(4, 2, A)]
    # A uses 0/8, B 3/4: A's two go first (A reaches 0.5), then B's first (1.0); B's second would borrow: last
    plan = plan_queue(machines=machines, queue=queue, policy=FAIR_SHARE, quotas=quotas, usage={B: 3}, explain=True)
    assert list(plan.placements) == [3, 4, 1, 2]
    assert [plan.positions[i] for i in (3, 4, 1, 2)] == [1, 2, 3, 4]
    fifo = plan_queue(machines=machines, queue=queue, policy=BEST_EFFORT_FIFO, quotas=quotas, usage={B: 3})
    assert list(fifo.placements) == [1, 3, 4, 2]  # the borrower still comes after those within their guarantee


def test_fair_share_holds_back_a_project_behind_its_first_waiting_task_only():
    queue = [task(1, 8, A), task(2, 1, A), task(3, 1, B)]
    machines = [Machine(1, "m1", 4, 0), Machine(2, "m2", 8, 8)]  # 4 free; 8 on one machine only once it empties
    plan = plan_queue(machines=machines, queue=queue, policy=FAIR_SHARE, explain=True)
    assert plan.placements == {3: [1]}
    assert plan.waits[2].code == WaitCode.BEHIND_PROJECT and plan.waits[2].blocker == "t1"


def test_borrowed_holders_are_those_past_their_projects_guarantee_longest_running_first():
    holders = [Holder(10, 1, ((1, 4),)), Holder(11, 2, ((1, 2),)), Holder(12, 3, ((2, 2),)), Holder(20, 1, ((2, 2),))]
    projects = {10: A, 11: A, 12: A, 20: B}
    found = borrowed(holders, projects, {A: Quota("proj-a", 5), B: Quota("proj-b", 2)})
    assert [h.task_id for h in found] == [12]  # 11 straddles A's guarantee (4 + 2 > 5): it is not a victim


def test_reclaim_kills_the_fewest_most_recent_borrowers_of_other_projects():
    machines = [Machine(1, "m1", 8, 8)]
    holders = [Holder(10, 1, ((1, 4),)), Holder(11, 2, ((1, 2),)), Holder(12, 3, ((1, 2),))]
    projects = {10: B, 11: B, 12: B}
    quotas = {A: Quota("proj-a", 4), B: Quota("proj-b", 4)}
    reclaimable = borrowed(holders, projects, quotas)
    plan = plan_queue(machines=machines, queue=[task(1, 4, A)], policy=STRICT_FIFO, quotas=quotas, usage={B: 8},
                      reclaimable=reclaimable, holder_projects=projects)
    assert plan.reclaims == {1: (12, 11)} and plan.placements == {1: [1]}


def test_reclaim_never_kills_for_a_borrower_nor_a_task_within_its_guarantee():
    machines = [Machine(1, "m1", 8, 8)]
    holders = [Holder(10, 1, ((1, 4),)), Holder(11, 2, ((1, 4),))]
    projects = {10: B, 11: A}
    quotas = {A: Quota("proj-a", 4), B: Quota("proj-b", 4)}
    reclaimable = borrowed(holders, projects, quotas)
    assert reclaimable == []
    plan = plan_queue(machines=machines, queue=[task(1, 4, A)], policy=STRICT_FIFO, quotas=quotas,
                      usage={A: 4, B: 4}, reclaimable=[Holder(10, 1, ((1, 4),))], holder_projects=projects)
    assert plan.reclaims == {} and plan.placements == {}  # A would borrow: reclaim is only for a guarantee


def test_reclaim_gives_up_when_even_every_borrowed_task_would_not_make_room():
    machines = [Machine(1, "m1", 8, 8)]
    projects = {10: B, 11: B}
    quotas = {A: Quota("proj-a", 8), B: Quota("proj-b", 4)}
    holders = [Holder(10, 1, ((1, 4),)), Holder(11, 2, ((1, 4),))]
    plan = plan_queue(machines=machines, queue=[task(1, 6, A)], policy=STRICT_FIFO, quotas=quotas, usage={B: 8},
                      reclaimable=borrowed(holders, projects, quotas), holder_projects=projects, explain=True)
    assert plan.reclaims == {} and plan.waits[1].code == WaitCode.CAPACITY


def test_an_earlier_task_within_its_guarantee_is_not_an_overtaking():
    """The stateful test's old counterexample, by hand: failures free A's SKUs; A's first queued task is within its
    guarantee again and ahead in line, so it starts; B's head (within its guarantee, too big for what is left)
    then holds back A's borrowers under strict FIFO."""
    machines = [Machine(1, "m1", 3, 0)]
    quotas = {A: Quota("proj-a", 1), B: Quota("proj-b", 4)}
    queue = [task(1, 1, A), task(2, 1, A), task(3, 3, B)]
    plan = plan_queue(machines=machines, queue=queue, policy=STRICT_FIFO, quotas=quotas, explain=True)
    assert plan.placements == {1: [1]}
    assert plan.waits[3].code == WaitCode.CAPACITY
    assert plan.waits[2].code == WaitCode.BEHIND_HEAD and plan.waits[2].blocker == "t3"
