"""Random operations over random clusters (Hypothesis stateful): the scheduler's promises hold after every step.

After each step: no machine is over-allocated, at most one task per VC is pinned, only deploying/running
tasks hold SKUs (and ports), queued tasks are in SPEC's order, nothing started past a pinned task or a
strict-FIFO head that still waits, and no queued task that the VC's policy would let start still waits
(checked against a brute-force oracle, not the scheduler's own code).
"""

from collections import Counter, defaultdict

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from clusters.models import Node, QueuePolicy, VirtualCluster
from scheduler.selectors import queue_status
from scheduler.scheduling import node_changed
from scheduler.services import (
    task_fail,
    task_force_start,
    task_instances_ready,
    task_pin,
    task_start,
    task_stop,
    task_unpin,
)
from tasks.exceptions import OperationRefused
from tasks.models import InstanceStatus, Task, TaskInstance
from tasks.states import HOLDING, STARTABLE, TRANSITIONS, Status
from tests.factories import ManagerFactory, NodeFactory, TaskFactory, UserFactory, VirtualClusterFactory

cluster_specs = st.lists(
    st.tuples(
        st.sampled_from(QueuePolicy.values),
        st.integers(1, 2),  # GPUs per SKU
        st.lists(st.integers(2, 6), min_size=1, max_size=3),  # SKU capacity of each machine
    ),
    min_size=1, max_size=2,
)
# (which VC, SKU count, replicas): mostly small enough to contend, sometimes never fitting
demands = st.tuples(st.integers(0, 1), st.sampled_from((1, 2, 1, 3, 2, 4, 9)), st.sampled_from((1, 1, 2, 1, 4)))


class Scheduling(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self._atomic = transaction.atomic()  # every example starts from, and leaves, an empty database
        self._atomic.__enter__()
        self.owner, self.manager = self.people
        self.clusters = []
        self.enqueued = []  # task ids in the order they joined a queue
        self.barriers = {}  # vc id -> (id of the queued task nothing may overtake, or None; ids holding GPUs)
        self.reordered = False  # a pin moves a task ahead on purpose
        self.counts = Counter()  # tasks per state (and "pinned") at the last check: rules run only where they can act

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @initialize(specs=cluster_specs, demands=st.lists(demands, min_size=6, max_size=14))
    def build(self, specs, demands):
        for policy, sku_gpus, capacities in specs:
            vc = VirtualClusterFactory(queue_policy=policy, sku_gpus=sku_gpus)
            for capacity in capacities:
                NodeFactory(virtual_cluster=vc, sku_capacity=capacity)
            self.clusters.append(vc)
        for demand in demands:  # a loaded cluster from the first step: queues to pin, tasks to kill
            self._start(self.create(*demand))

    @rule(demand=demands)
    def create_and_start(self, demand):
        self._start(self.create(*demand))

    @rule(which=st.integers(0, 1))
    def create_and_start_small(self, which):  # the task that would slip past a waiting head, if anything could
        self._start(self.create(which, 1, 1))

    def create(self, which, sku_count, replicas):
        vc = self.clusters[which % len(self.clusters)]
        return TaskFactory(virtual_cluster=vc, sku_count=sku_count, replicas=replicas, owner=self.owner)

    def _pick(self, which, **filters):
        """The ``which``-th task (modulo) among those in the given states: every rule acts on a task it can act on."""
        found = list(Task.objects.filter(virtual_cluster__in=self.clusters, **filters).order_by("pk"))
        return found[which % len(found)] if found else None

    @precondition(lambda self: sum(self.counts[s] for s in STARTABLE))
    @rule(which=st.integers(0, 30))
    def start(self, which):
        task = self._pick(which, status__in=STARTABLE)
        if task is not None:
            self._start(task)

    def _start(self, task):
        try:
            task = task_start(task=task, user=self.owner)
        except OperationRefused:
            return
        if task.status == Status.QUEUED:  # at the back, also when it waited before (stopped, then started)
            self.enqueued = [i for i in self.enqueued if i != task.pk] + [task.pk]

    @precondition(lambda self: sum(self.counts[s] for s in TRANSITIONS["stop"].sources))
    @rule(which=st.integers(0, 30))
    def stop(self, which):
        task = self._pick(which, status__in=TRANSITIONS["stop"].sources)
        if task is not None:
            task_stop(task=task, user=self.owner)

    @precondition(lambda self: self.counts[Status.QUEUED])
    @rule(which=st.integers(0, 30))
    def pin(self, which):
        task = self._pick(which, status=Status.QUEUED)
        if task is None:
            return
        self.reordered = True
        try:
            task_pin(task=task, user=self.manager)
        except OperationRefused:  # another task of the VC is pinned
            assert Task.objects.filter(virtual_cluster_id=task.virtual_cluster_id, pinned=True).exists()

    @precondition(lambda self: self.counts["pinned"])
    @rule(which=st.integers(0, 30))
    def unpin(self, which):
        task = self._pick(which, pinned=True)
        if task is not None:
            task_unpin(task=task, user=self.manager)

    @precondition(lambda self: self.counts["pinned"])
    @rule(which=st.integers(0, 30))
    def force_start(self, which):
        task = self._pick(which, pinned=True)
        if task is None:
            return
        try:
            task_force_start(task=task, user=self.manager)
        except OperationRefused:  # it could not fit even on the empty VC
            assert Task.objects.get(pk=task.pk).status == Status.QUEUED

    @precondition(lambda self: sum(self.counts[s] for s in HOLDING))
    @rule(which=st.integers(0, 30))
    def instance_fails(self, which):
        task = self._pick(which, status__in=HOLDING)
        if task is not None:
            assert task_fail(task_id=task.pk, reason="OOMKilled").status == Status.FAILED

    @precondition(lambda self: self.counts[Status.DEPLOYING])
    @rule(which=st.integers(0, 30))
    def instances_ready(self, which):
        task = self._pick(which, status=Status.DEPLOYING)
        if task is not None:
            TaskInstance.objects.filter(task=task).update(status=InstanceStatus.READY)
            assert task_instances_ready(task_id=task.pk).status == Status.RUNNING

    @rule(which=st.integers(0, 8))
    def cordon_or_uncordon(self, which):
        nodes = list(Node.objects.filter(virtual_cluster__in=self.clusters).order_by("pk"))
        node = nodes[which % len(nodes)]
        node.schedulable = not node.schedulable
        node.save()
        node_changed(node=node)

    @invariant()
    def promises_hold(self):
        world = Snapshot(self.clusters)
        self.counts = Counter(t.status for t in world.tasks) + Counter("pinned" for t in world.tasks if t.pinned)
        for vc in self.clusters:
            world.check_machines(vc)
            world.check_tasks(vc)
            world.check_queue_order(vc, self.enqueued, queue_status(user=self.manager, virtual_cluster_id=vc.pk, limit=None))
            world.check_nothing_placeable_waits(vc)
            before = self.barriers.get(vc.pk)
            barrier, holding = world.barrier(vc), world.holding_ids(vc)
            if before and not self.reordered and barrier is not None and barrier == before[0]:
                assert holding <= before[1], f"{holding - before[1]} overtook task {barrier}"
            self.barriers[vc.pk] = (barrier, holding)
        self.reordered = False


class Snapshot:
    """Every row of the machine's clusters, read once per step, and the promises checked by brute force."""

    def __init__(self, clusters):
        ids = [vc.pk for vc in clusters]
        self.policy = dict(VirtualCluster.objects.filter(pk__in=ids).values_list("pk", "queue_policy"))
        self.nodes = list(Node.objects.filter(virtual_cluster_id__in=ids).select_related("virtual_cluster"))
        self.tasks = list(Task.objects.filter(virtual_cluster_id__in=ids).order_by("-pinned", "queued_at", "id"))
        self.instances = defaultdict(list)
        for instance in TaskInstance.objects.of_current_run().filter(task__virtual_cluster_id__in=ids):
            self.instances[instance.task_id].append(instance)

    def _nodes(self, vc):
        return [n for n in self.nodes if n.virtual_cluster_id == vc.pk]

    def _holding(self, vc):
        return [t for t in self.tasks if t.virtual_cluster_id == vc.pk and t.status in HOLDING]

    def holding_ids(self, vc):
        return {t.pk for t in self._holding(vc)}

    def _used(self, node):
        return [i for t in self.tasks if t.status in HOLDING for i in self.instances[t.pk] if i.node_id == node.pk]

    def _queue(self, vc):
        """The queued tasks in SPEC's order, less those that could never fit (they wait without blocking)."""
        capacities = [n.sku_capacity for n in self._nodes(vc)]
        return [
            t for t in self.tasks
            if t.virtual_cluster_id == vc.pk and t.status == Status.QUEUED and fits(t, capacities)
        ]

    def barrier(self, vc):
        queue = self._queue(vc)
        strict = self.policy[vc.pk] == QueuePolicy.STRICT_FIFO
        return queue[0].pk if queue and (queue[0].pinned or strict) else None

    def check_machines(self, vc):
        for node in self._nodes(vc):
            used = self._used(node)
            assert sum(i.sku_count for i in used) <= node.sku_capacity, f"{node.name} is over-allocated"
            gpus = [g for i in used for g in i.gpu_indices]
            assert len(gpus) == len(set(gpus)), f"{node.name} gave a GPU twice"
            assert all(0 <= g < node.sku_capacity * node.virtual_cluster.sku_gpus for g in gpus)

    def check_tasks(self, vc):
        tasks = [t for t in self.tasks if t.virtual_cluster_id == vc.pk]
        assert sum(t.pinned for t in tasks) <= 1
        for task in tasks:
            if task.status in HOLDING:
                assert [i.sku_count for i in self.instances[task.pk]] == [task.sku_count] * task.replicas
                assert task.endpoint_port is not None and task.started_at is not None
            else:
                assert task.endpoint_port is None
            assert not task.pinned or task.status == Status.QUEUED
            assert (task.queued_at is not None) == (task.status == Status.QUEUED)

    def check_queue_order(self, vc, enqueued, status):
        [shown] = status
        entries = [e["id"] for e in shown["queue"]]
        pinned = [t.pk for t in self.tasks if t.virtual_cluster_id == vc.pk and t.pinned]
        expected = pinned + [i for i in enqueued if i in set(entries) and i not in pinned]
        assert entries == expected
        assert [e["position"] for e in shown["queue"]] == list(range(1, len(entries) + 1))

    def check_nothing_placeable_waits(self, vc):
        free = [n.sku_capacity - sum(i.sku_count for i in self._used(n)) for n in self._nodes(vc) if n.schedulable]
        queue = self._queue(vc)
        if not queue:
            return
        if self.barrier(vc) is not None:
            assert not fits(queue[0], free), f"task {queue[0].pk} at the head could start"
        else:
            assert not any(fits(t, free) for t in queue), "a queued task could start"


def fits(task, free_blocks):
    return sum(max(0, f) // task.sku_count for f in free_blocks) >= task.replicas


@pytest.mark.django_db
def test_scheduler_promises_hold_under_random_operations():
    Scheduling.people = (UserFactory(), ManagerFactory())
    run_state_machine_as_test(
        Scheduling,
        settings=settings(
            max_examples=8, stateful_step_count=30, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
