"""Deciders at once on PostgreSQL: threads with their own connections never over-allocate or double-kill."""

import threading

import pytest
from django.db import connections
from django.db.models import Sum

from scheduler.services import task_force_start, task_pin, task_start
from tasks.exceptions import InvalidTransition
from tasks.models import Task, TaskInstance
from tasks.states import HOLDING, Status

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(workers):
    """Run each callable in its own thread (own connection), released together; returns results or exceptions."""
    gate = threading.Barrier(len(workers))
    results = [None] * len(workers)

    def run(index, work):
        try:
            gate.wait(timeout=30)
            results[index] = work()
        except Exception as error:  # noqa: BLE001 - handed to the test, which asserts on it
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results


def assert_not_over_allocated(cluster):
    for node in cluster.nodes:
        used = TaskInstance.objects.holding().filter(node=node).aggregate(s=Sum("sku_count"))["s"] or 0
        assert used <= node.sku_capacity, node.name
        indices = [i for row in TaskInstance.objects.holding().filter(node=node).values_list("gpu_indices", flat=True) for i in row]
        assert len(indices) == len(set(indices)), node.name


def test_eight_threads_starting_200_tasks_into_room_for_50(make_cluster):
    cluster = make_cluster(10, 10, 10, 10, 10)
    tasks = [cluster.task(sku_count=1) for _ in range(200)]

    def starter(batch):
        return lambda: [task_start(task=task, user=cluster.owner).status for task in batch]

    results = run_together([starter(tasks[i::8]) for i in range(8)])
    assert all(isinstance(r, list) and len(r) == 25 for r in results), results
    assert Task.objects.filter(status__in=HOLDING).count() == 50
    assert Task.objects.filter(status=Status.QUEUED).count() == 150
    assert sum(r.count(Status.DEPLOYING) for r in results) == 50
    assert_not_over_allocated(cluster)
    ports = list(Task.objects.filter(status__in=HOLDING).values_list("endpoint_port", flat=True))
    assert len(set(ports)) == 50 and None not in ports


def test_two_simultaneous_force_starts_cannot_both_kill(make_cluster):
    cluster = make_cluster(4, 4)
    holders = [task_start(task=cluster.task(sku_count=4), user=cluster.owner) for _ in range(2)]
    urgent = task_start(task=cluster.task(sku_count=4, name="urgent"), user=cluster.owner)
    urgent = task_pin(task=urgent, user=cluster.manager)

    results = run_together([lambda: task_force_start(task=urgent, user=cluster.manager) for _ in range(2)])
    won = [r for r in results if isinstance(r, Task)]
    lost = [r for r in results if isinstance(r, InvalidTransition)]
    assert len(won) == 1 and len(lost) == 1, results
    assert lost[0].status == Status.DEPLOYING  # the loser found the task already started, and killed nothing
    assert Task.objects.filter(pk__in=[h.pk for h in holders], status=Status.KILLED).count() == 1
    assert Task.objects.get(pk=urgent.pk).status == Status.DEPLOYING
    assert_not_over_allocated(cluster)


def test_deciders_in_different_clusters_never_pick_the_same_endpoint_port(make_cluster):
    clusters = [make_cluster(8, 8, prefix="a"), make_cluster(8, 8, prefix="b")]
    batches = [[cluster.task(sku_count=1) for _ in range(8)] for cluster in clusters for _half in range(2)]

    def starter(batch):
        return lambda: [task_start(task=task, user=task.owner).status for task in batch]

    results = run_together([starter(batch) for batch in batches])
    assert all(isinstance(r, list) for r in results), results
    ports = list(Task.objects.filter(status__in=HOLDING).values_list("endpoint_port", flat=True))
    assert len(ports) == 32 and len(set(ports)) == 32
