"""Queue status for the sidebar and the API: positions, reasons, capacity, scoping, and fixed query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clusters.models import QueuePolicy
from scheduler.selectors import capacity_warning, queue_info_for, queue_status, virtual_cluster_capacity
from scheduler.services import task_pin, task_start
from tasks.models import Task
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy(make_cluster):
    """Two 4-SKU machines, 3 SKUs held on each; a strict queue: head needs 2 on one machine, then three 1-SKU tasks."""
    cluster = make_cluster(4, 4, sku_gpus=2)
    cluster.vc.users.add(cluster.owner)
    cluster.holders = [task_start(task=cluster.task(sku_count=3), user=cluster.owner) for _ in range(2)]
    cluster.head = task_start(task=cluster.task(sku_count=2, name="head"), user=cluster.owner)
    someone = UserFactory()
    cluster.small = [
        task_start(task=cluster.task(sku_count=1, owner=owner, name=f"small-{i}"), user=owner)
        for i, owner in enumerate([someone, cluster.owner, someone])
    ]
    return cluster


def test_positions_reasons_capacity_and_the_users_own_tasks(busy):
    [vc] = queue_status(user=busy.owner)
    assert (vc["id"], vc["queued_count"], vc["pinned"]) == (busy.vc.pk, 4, None)
    assert (vc["total_skus"], vc["free_skus"], vc["total_gpus"], vc["free_gpus"]) == (8, 2, 16, 4)
    # small-0 and small-2 are someone's, of projects the owner is not in: not named to them.
    hidden = "a task of another project"
    assert [(e["name"], e["position"], e["reason_code"]) for e in vc["queue"]] == [
        ("head", 1, "fragmented"), (hidden, 2, "behind_head"), ("small-1", 3, "behind_head"),
        (hidden, 4, "behind_head"),
    ]
    assert vc["queue"][0]["reason"] == (
        f"needs 2 SKUs on one machine; largest free block is 1 on {busy.nodes[0].name}; 0 tasks ahead"
    )
    assert vc["queue"][2]["reason"] == "strict FIFO: waits behind “head” at the head of the queue; 2 tasks ahead"
    assert [(e["name"], e["position"], e["owner"]) for e in vc["mine"]] == [
        ("head", 1, busy.owner.username), ("small-1", 3, busy.owner.username),
    ]


def test_a_pinned_task_that_fits_starts_and_limit_pages(busy):
    task_pin(task=busy.small[2], user=busy.manager)
    [vc] = queue_status(user=busy.manager, limit=2)
    # Pinned, small-2 heads the queue and fits a 1-SKU block: it started and is no longer pinned.
    assert Task.objects.get(pk=busy.small[2].pk).status == "deploying"
    assert vc["pinned"] is None and vc["queued_count"] == 3
    assert [e["name"] for e in vc["queue"]] == ["head", "small-0"]
    [vc] = queue_status(user=busy.manager, virtual_cluster_id=busy.vc.pk, limit=None)
    assert [e["name"] for e in vc["queue"]] == ["head", "small-0", "small-1"]


def test_a_pinned_task_that_waits_shows_as_pinned_and_the_barrier(make_cluster):
    cluster = make_cluster(4, policy=QueuePolicy.BEST_EFFORT_FIFO)
    task_start(task=cluster.task(sku_count=3), user=cluster.owner)
    big = task_start(task=cluster.task(sku_count=4, name="big"), user=cluster.owner)
    task_pin(task=big, user=cluster.manager)
    small = task_start(task=cluster.task(sku_count=1, name="small"), user=cluster.owner)
    [vc] = queue_status(user=cluster.manager, limit=None)
    assert vc["pinned"] == {"id": big.pk, "name": "big", "visible": True}
    assert [(e["name"], e["reason_code"]) for e in vc["queue"]] == [("big", "capacity"), ("small", "behind_pinned")]
    assert queue_info_for([small])[small.pk] == (2, "waits behind the pinned task “big”; 1 task ahead")


def test_only_visible_clusters_are_shown(busy, make_cluster):
    make_cluster(8)  # not granted to busy.owner
    assert [vc["id"] for vc in queue_status(user=busy.owner)] == [busy.vc.pk]
    assert len(queue_status(user=busy.manager)) == 2
    assert queue_status(user=UserFactory()) == []


def queries(func):
    with CaptureQueriesContext(connection) as context:
        func()
    return len(context.captured_queries)


def test_query_counts_do_not_grow_with_the_queue(busy):
    user = busy.owner
    few_status = queries(lambda: queue_status(user=user))
    few_tasks = list(Task.objects.filter(status="queued"))
    few_info = queries(lambda: queue_info_for(few_tasks))
    for i in range(30):
        task_start(task=busy.task(sku_count=1 + i % 2, external_port=31000 + i), user=user)
    many_tasks = list(Task.objects.filter(status="queued"))
    assert len(many_tasks) > 30
    # Fixed external ports add one read of the held ports, whatever their number.
    assert queries(lambda: queue_status(user=user)) <= few_status + 1
    assert queries(lambda: queue_info_for(many_tasks)) <= few_info + 1
    assert set(queue_info_for(many_tasks)) == {t.pk for t in many_tasks}


def test_capacity_of_clusters_and_the_never_fits_warning(busy):
    assert virtual_cluster_capacity(virtual_cluster_ids=[busy.vc.pk]) == {
        busy.vc.pk: {"total_skus": 8, "free_skus": 2, "total_gpus": 16, "free_gpus": 4, "unschedulable_skus": 0},
    }
    assert capacity_warning(virtual_cluster=busy.vc, sku_count=2, replicas=4) is None
    assert "could host only 4" in capacity_warning(virtual_cluster=busy.vc, sku_count=2, replicas=5)
    assert "largest machine offers 4" in capacity_warning(virtual_cluster=busy.vc, sku_count=5, replicas=1)
