"""The scheduler's services on PostgreSQL: start, queue, stop, pin, unpin, failures and machine changes."""

import pytest
from django.core.exceptions import PermissionDenied

from deploy_portal.messages import render
from clusters.models import QueuePolicy
from scheduler.selectors import queue_status
from scheduler.scheduling import node_changed, schedule_all
from scheduler.services import task_fail, task_instances_ready, task_pin, task_start, task_stop, task_unpin
from tasks.exceptions import InvalidTransition, OperationRefused
from tasks.models import InstanceStatus, Task, TaskEvent
from tasks.states import Status
from tests.factories import NodeFactory

pytestmark = pytest.mark.django_db


def statuses(*tasks):
    return [Task.objects.get(pk=t.pk).status for t in tasks]


def test_start_places_at_once_with_instances_gpus_and_a_port(make_cluster, sent, django_capture_on_commit_callbacks, settings):
    cluster = make_cluster(8, 4, sku_gpus=2)
    holder = cluster.task(sku_count=1)
    task_start(task=holder, user=cluster.owner)
    task = cluster.task(sku_count=2, replicas=2, external_port=None)
    with django_capture_on_commit_callbacks(execute=True):
        task = task_start(task=task, user=cluster.owner)
    assert task.status == Status.DEPLOYING and task.started_at and task.queued_at is None
    low, _high = settings.NODEPORT_RANGE
    assert (holder.__class__.objects.get(pk=holder.pk).endpoint_port, task.endpoint_port) == (low, low + 1)
    instances = list(task.instances.order_by("index"))
    # Best fit: the holder took the 4-SKU machine (GPUs 0-1); the first replica fills its 3 free SKUs' best
    # block beside it, the second goes to the empty 8-SKU machine.
    assert [(i.node_name, i.sku_count, i.gpu_count, i.gpu_indices) for i in instances] == [
        (cluster.nodes[1].name, 2, 4, [2, 3, 4, 5]),
        (cluster.nodes[0].name, 2, 4, [0, 1, 2, 3]),
    ]
    assert sent == [("deploy_task", task.pk)]
    event = TaskEvent.objects.filter(task=task).last()
    assert (event.operation, event.from_status, event.to_status, event.actor) == (
        "start", Status.NOT_DEPLOYED, Status.DEPLOYING, cluster.owner,
    )


def test_a_task_that_does_not_fit_queues_and_starts_when_gpus_are_freed(make_cluster, sent, django_capture_on_commit_callbacks):
    cluster = make_cluster(4)
    first = task_start(task=cluster.task(sku_count=3), user=cluster.owner)
    waiting = task_start(task=cluster.task(sku_count=2), user=cluster.owner)
    assert waiting.status == Status.QUEUED and waiting.queued_at is not None
    assert "needs 2 SKUs in total; 1 free" in render(TaskEvent.objects.filter(task=waiting).last().message)
    with django_capture_on_commit_callbacks(execute=True):
        task_stop(task=first, user=cluster.owner)
    waiting.refresh_from_db()
    assert waiting.status == Status.DEPLOYING and waiting.queued_at is None
    assert waiting.instances.get().gpu_indices == [0, 1]
    # The stop's own pass placed it, in the same commit: no second pass is sent to a worker.
    assert sent == [("teardown_task", first.pk), ("deploy_task", waiting.pk)]
    assert Task.objects.get(pk=first.pk).endpoint_port is None


def test_strict_fifo_joins_the_back_even_if_it_fits(make_cluster):
    cluster = make_cluster(4)
    task_start(task=cluster.task(sku_count=3), user=cluster.owner)
    head = task_start(task=cluster.task(sku_count=4), user=cluster.owner)
    small = task_start(task=cluster.task(sku_count=1), user=cluster.owner)
    assert (head.status, small.status) == (Status.QUEUED, Status.QUEUED)


def test_best_effort_starts_a_later_task_that_fits(make_cluster):
    cluster = make_cluster(4, policy=QueuePolicy.BEST_EFFORT_FIFO)
    task_start(task=cluster.task(sku_count=3), user=cluster.owner)
    head = task_start(task=cluster.task(sku_count=4), user=cluster.owner)
    small = task_start(task=cluster.task(sku_count=1), user=cluster.owner)
    assert (head.status, small.status) == (Status.QUEUED, Status.DEPLOYING)


def test_start_refuses_a_task_that_can_never_fit_with_the_numbers(make_cluster):
    cluster = make_cluster(8, 4)
    too_big = cluster.task(sku_count=9)
    with pytest.raises(OperationRefused, match="needs 9 SKUs on one machine, but the largest machine offers 8"):
        task_start(task=too_big, user=cluster.owner)
    too_many = cluster.task(sku_count=4, replicas=4)
    with pytest.raises(OperationRefused, match="could host only 3"):
        task_start(task=too_many, user=cluster.owner)
    assert statuses(too_big, too_many) == [Status.NOT_DEPLOYED, Status.NOT_DEPLOYED]


def test_start_refuses_an_external_port_another_task_holds(make_cluster):
    cluster = make_cluster(8)
    task_start(task=cluster.task(external_port=30500), user=cluster.owner)
    clash = cluster.task(external_port=30500)
    with pytest.raises(OperationRefused, match="30500"):
        task_start(task=clash, user=cluster.owner)
    assert statuses(clash) == [Status.NOT_DEPLOYED]


def test_start_is_offered_only_from_startable_states(make_cluster):
    cluster = make_cluster(8)
    task = task_start(task=cluster.task(), user=cluster.owner)
    with pytest.raises(InvalidTransition, match="deploying"):
        task_start(task=task, user=cluster.owner)


def test_pin_is_for_managers_one_per_vc_and_the_refusal_names_the_pinned_task(make_cluster):
    cluster = make_cluster(4)
    task_start(task=cluster.task(sku_count=4), user=cluster.owner)
    first = task_start(task=cluster.task(sku_count=2, name="first"), user=cluster.owner)
    second = task_start(task=cluster.task(sku_count=2, name="second"), user=cluster.owner)
    with pytest.raises(PermissionDenied):
        task_pin(task=second, user=cluster.owner)
    pinned = task_pin(task=second, user=cluster.manager)
    assert pinned.pinned and TaskEvent.objects.filter(task=second, operation="pin", actor=cluster.manager).exists()
    with pytest.raises(OperationRefused, match="“second” is already pinned"):
        task_pin(task=first, user=cluster.manager)
    running = Task.objects.filter(virtual_cluster=cluster.vc, status=Status.DEPLOYING).get()
    with pytest.raises(InvalidTransition):
        task_pin(task=running, user=cluster.manager)


def test_a_pinned_task_blocks_best_effort_until_it_starts_or_is_unpinned(make_cluster):
    cluster = make_cluster(4, policy=QueuePolicy.BEST_EFFORT_FIFO)
    task_start(task=cluster.task(sku_count=3), user=cluster.owner)
    big = task_start(task=cluster.task(sku_count=4), user=cluster.owner)
    task_pin(task=big, user=cluster.manager)
    small = task_start(task=cluster.task(sku_count=1), user=cluster.owner)
    assert small.status == Status.QUEUED  # nothing overtakes a pinned task
    task_unpin(task=big, user=cluster.manager)
    assert statuses(big, small) == [Status.QUEUED, Status.DEPLOYING]


def test_pinning_the_task_behind_a_strict_head_starts_it_if_it_fits(make_cluster):
    cluster = make_cluster(4)
    task_start(task=cluster.task(sku_count=3), user=cluster.owner)
    head = task_start(task=cluster.task(sku_count=4), user=cluster.owner)
    small = task_start(task=cluster.task(sku_count=1), user=cluster.owner)
    small = task_pin(task=small, user=cluster.manager)
    assert (small.status, small.pinned) == (Status.DEPLOYING, False)
    assert statuses(head) == [Status.QUEUED]


def test_stopping_a_queued_head_lets_the_next_start(make_cluster):
    cluster = make_cluster(4)
    task_start(task=cluster.task(sku_count=3), user=cluster.owner)
    head = task_start(task=cluster.task(sku_count=4), user=cluster.owner)
    task_pin(task=head, user=cluster.manager)
    small = task_start(task=cluster.task(sku_count=1), user=cluster.owner)
    head = task_stop(task=head, user=cluster.owner)
    assert (head.status, head.pinned, head.queued_at) == (Status.STOPPED, False, None)
    assert statuses(small) == [Status.DEPLOYING]


def test_failure_frees_the_gpus_and_is_a_quiet_no_op_when_repeated(make_cluster, sent, django_capture_on_commit_callbacks):
    cluster = make_cluster(2)
    broken = task_start(task=cluster.task(sku_count=2), user=cluster.owner)
    waiting = task_start(task=cluster.task(sku_count=2), user=cluster.owner)
    with django_capture_on_commit_callbacks(execute=True):
        failed = task_fail(task_id=broken.pk, reason="CrashLoopBackOff: the container keeps crashing.")
    assert (failed.status, failed.endpoint_port) == (Status.FAILED, None)
    assert render(Task.objects.get(pk=broken.pk).status_message).startswith("CrashLoopBackOff")
    assert statuses(waiting) == [Status.DEPLOYING]
    assert ("teardown_task", broken.pk) in sent
    assert task_fail(task_id=broken.pk, reason="again") is None
    assert task_fail(task_id=0, reason="gone") is None


def test_instances_ready_moves_to_running_only_when_every_instance_is_ready(make_cluster):
    cluster = make_cluster(8)
    task = task_start(task=cluster.task(replicas=2), user=cluster.owner)
    first, second = task.instances.order_by("index")
    first.status = InstanceStatus.READY
    first.save()
    assert task_instances_ready(task_id=task.pk) is None
    second.status = InstanceStatus.READY
    second.save()
    assert task_instances_ready(task_id=task.pk).status == Status.RUNNING
    assert task_instances_ready(task_id=task.pk) is None  # already running


def test_a_machine_added_or_uncordoned_starts_the_queue(make_cluster):
    cluster = make_cluster(2)
    node = cluster.nodes[0]
    node.schedulable = False
    node.save()
    waiting = task_start(task=cluster.task(sku_count=2), user=cluster.owner)
    assert waiting.status == Status.QUEUED  # it fits the machine once it is back: it waits, it is not refused
    node.schedulable = True
    node.save()
    assert node_changed(node=node) == [waiting.pk]
    assert statuses(waiting) == [Status.DEPLOYING]


def test_a_task_placed_again_gets_a_new_run_and_keeps_the_old_runs_instances(make_cluster):
    cluster = make_cluster(4)
    task = task_start(task=cluster.task(sku_count=2), user=cluster.owner)
    first = task.current_run
    old_ids = set(first.instances.values_list("pk", flat=True))
    task_stop(task=task, user=cluster.owner)
    assert set(task.instances.values_list("pk", flat=True)) == old_ids  # kept for the logs
    task = task_start(task=task, user=cluster.owner)
    second = task.current_run
    assert (first.number, second.number) == (1, 2)
    assert set(first.instances.values_list("pk", flat=True)) == old_ids  # never deleted with a new placement
    assert second.instances.count() == 1 and not set(second.instances.values_list("pk", flat=True)) & old_ids
    first.refresh_from_db()
    assert first.outcome == "stopped" and first.ended_at is not None and second.ended_at is None


def test_the_periodic_pass_starts_what_any_cluster_can_start_now(make_cluster):
    clusters = [make_cluster(2), make_cluster(2, policy=QueuePolicy.BEST_EFFORT_FIFO)]
    waiting = []
    for cluster in clusters:
        task_start(task=cluster.task(sku_count=2), user=cluster.owner)
        waiting.append(task_start(task=cluster.task(sku_count=2), user=cluster.owner))
        # A machine appears without anyone saying so: only the safety net notices.
        NodeFactory(virtual_cluster=cluster.vc, name=f"late-{cluster.vc.pk}", sku_capacity=2)
    assert statuses(*waiting) == [Status.QUEUED, Status.QUEUED]
    assert sorted(schedule_all()) == sorted(t.pk for t in waiting)
    assert statuses(*waiting) == [Status.DEPLOYING, Status.DEPLOYING]
    assert schedule_all() == []  # nothing changed: nothing to do


def test_a_pass_over_several_vcs_gives_a_fixed_port_asked_for_in_two_of_them_once(make_cluster):
    """Two queued tasks of different VCs may ask for one port: the pass starts one, the other waits, nothing aborts."""
    first = make_cluster(4, prefix="a")
    second = make_cluster(4, policy=QueuePolicy.BEST_EFFORT_FIFO, prefix="b")
    fillers = [task_start(task=c.task(sku_count=4), user=c.owner) for c in (first, second)]
    wanting = [task_start(task=c.task(sku_count=1, external_port=30500), user=c.owner) for c in (first, second)]
    other = task_start(task=second.task(sku_count=1), user=second.owner)
    assert statuses(*wanting, other) == [Status.QUEUED] * 3
    # Both VCs' GPUs free at once (as when the worker's reports arrive between two periodic passes).
    Task.objects.filter(pk__in=[t.pk for t in fillers]).update(status=Status.FAILED, endpoint_port=None)
    # The queue views foresee what the pass will do.
    foreseen = {e["id"]: e["reason_code"] for q in queue_status(user=first.manager) for e in q["queue"]}
    assert foreseen == {wanting[0].pk: "placeable", wanting[1].pk: "port_in_use", other.pk: "placeable"}

    placed = schedule_all()

    assert statuses(wanting[0], other) == [Status.DEPLOYING, Status.DEPLOYING]
    assert set(placed) == {wanting[0].pk, other.pk}
    assert Task.objects.get(pk=wanting[0].pk).endpoint_port == 30500
    assert statuses(wanting[1]) == [Status.QUEUED]
    entry = next(e for q in queue_status(user=second.manager) for e in q["queue"] if e["id"] == wanting[1].pk)
    assert entry["reason_code"] == "port_in_use"


def test_a_queued_task_that_can_no_longer_ever_fit_leaves_the_queue_with_the_reason(make_cluster):
    cluster = make_cluster(8, 8, 4)
    task_start(task=cluster.task(sku_count=8), user=cluster.owner)
    big = task_start(task=cluster.task(sku_count=8, replicas=2, name="big"), user=cluster.owner)
    small = task_start(task=cluster.task(sku_count=1, name="small"), user=cluster.owner)
    assert statuses(big, small) == [Status.QUEUED, Status.QUEUED]  # strict FIFO: small waits behind big
    free_eight = next(n for n in cluster.nodes if n.sku_capacity == 8 and not n.instances.exists())
    free_eight.delete()  # now one 8-SKU machine is left: big could never run

    placed = schedule_all()

    assert placed == [small.pk] and statuses(big, small) == [Status.STOPPED, Status.DEPLOYING]
    big = Task.objects.get(pk=big.pk)
    event = big.events.last()
    assert (event.operation, event.from_status, event.to_status, event.actor) == ("stop", "queued", "stopped", None)
    assert str(event.message) == str(big.status_message) == (
        f"Taken out of the queue: it can never run on {cluster.vc.name} as its machines now are — it needs 2 "
        "instances of 8 SKUs, each on one machine, but even empty the machines could host only 1."
    )
    assert (big.pinned, big.queued_at) == (False, None)
