"""Random operations over random clusters (Hypothesis stateful): the scheduler's promises hold after every step.

After each step: no machine is over-allocated, at most one task per VC is pinned, only deploying/running
tasks hold SKUs (and ports), queued tasks are in SPEC's order, and no queued task that the VC's policy
would let start still waits (checked against a brute-force oracle, not the scheduler's own code).
"""

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from clusters.models import Node, QueuePolicy
from scheduler.selectors import queue_status
from scheduler.services import (
    node_changed, task_fail, task_force_start, task_instances_ready, task_pin, task_start, task_stop, task_unpin,
)
from tasks.exceptions import OperationRefused
from tasks.models import InstanceStatus, Task, TaskInstance
from tasks.states import HOLDING, STARTABLE, TRANSITIONS, Status
from tests.factories import ManagerFactory, NodeFactory, TaskFactory, UserFactory, VirtualClusterFactory

cluster_specs = st.lists(
    st.tuples(
        st.sampled_from(QueuePolicy.values),
        st.integers(1, 2),  # GPUs per SKU
        st.lists(st.integers(2, 8), min_size=1, max_size=3),  # SKU capacity of each machine
    ),
    min_size=1, max_size=2,
)
# (which VC, SKU count, replicas): mostly small enough to contend, sometimes never fitting
demands = st.tuples(st.integers(0, 1), st.integers(1, 4) | st.just(9), st.integers(1, 2) | st.just(4))


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

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @initialize(specs=cluster_specs, demands=st.lists(demands, min_size=4, max_size=10))
    def build(self, specs, demands):
        for policy, sku_gpus, capacities in specs:
            vc = VirtualClusterFactory(queue_policy=policy, sku_gpus=sku_gpus)
            for capacity in capacities:
                NodeFactory(virtual_cluster=vc, sku_capacity=capacity)
            self.clusters.append(vc)
        for demand in demands:
            self.create(*demand)

    @rule(demand=demands)
    def create_and_start(self, demand):
        self._start(self.create(*demand))

    def create(self, which, sku_count, replicas):
        vc = self.clusters[which % len(self.clusters)]
        return TaskFactory(virtual_cluster=vc, sku_count=sku_count, replicas=replicas, owner=self.owner)

    def _pick(self, which, **filters):
        """The ``which``-th task (modulo) among those in the given states: every rule acts on a task it can act on."""
        found = list(Task.objects.filter(virtual_cluster__in=self.clusters, **filters).order_by("pk"))
        return found[which % len(found)] if found else None

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
        if task.status == Status.QUEUED:
            self.enqueued.append(task.pk)

    @rule(which=st.integers(0, 30))
    def stop(self, which):
        task = self._pick(which, status__in=TRANSITIONS["stop"].sources)
        if task is not None:
            task_stop(task=task, user=self.owner)

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

    @rule(which=st.integers(0, 30))
    def unpin(self, which):
        task = self._pick(which, pinned=True)
        if task is not None:
            task_unpin(task=task, user=self.manager)

    @rule(which=st.integers(0, 30))
    def force_start(self, which):
        task = self._pick(which, pinned=True)
        if task is None:
            return
        try:
            task_force_start(task=task, user=self.manager)
        except OperationRefused:  # it could not fit even on the empty VC
            assert Task.objects.get(pk=task.pk).status == Status.QUEUED

    @rule(which=st.integers(0, 30))
    def instance_fails(self, which):
        task = self._pick(which, status__in=HOLDING)
        if task is not None:
            assert task_fail(task_id=task.pk, reason="OOMKilled").status == Status.FAILED

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
    def machines_are_not_over_allocated(self):
        for node in Node.objects.filter(virtual_cluster__in=self.clusters).select_related("virtual_cluster"):
            held = list(TaskInstance.objects.holding().filter(node=node).values_list("sku_count", "gpu_indices"))
            assert sum(skus for skus, _ in held) <= node.sku_capacity
            gpus = [i for _, indices in held for i in indices]
            assert len(gpus) == len(set(gpus))
            assert all(0 <= i < node.sku_capacity * node.virtual_cluster.sku_gpus for i in gpus)

    @invariant()
    def only_holding_tasks_hold(self):
        for task in Task.objects.filter(virtual_cluster__in=self.clusters):
            instances = list(task.instances.values_list("sku_count", flat=True))
            if task.status in HOLDING:
                assert instances == [task.sku_count] * task.replicas
                assert task.endpoint_port is not None and task.started_at is not None
            else:
                assert task.endpoint_port is None
            assert not task.pinned or task.status == Status.QUEUED
            assert (task.queued_at is not None) == (task.status == Status.QUEUED)

    @invariant()
    def queues_are_in_spec_order_with_one_pinned_at_most(self):
        for vc in queue_status(user=self.manager, limit=None):
            entries = vc["queue"]
            pinned = [e["id"] for e in entries if e["pinned"]]
            assert len(pinned) <= 1
            expected = pinned + [i for i in self.enqueued if i in {e["id"] for e in entries} and i not in pinned]
            assert [e["id"] for e in entries] == expected
            assert [e["position"] for e in entries] == list(range(1, len(entries) + 1))

    @invariant()
    def nothing_overtakes_a_waiting_pinned_task_or_strict_head(self):
        current = {}
        for vc in self.clusters:
            capacities = list(Node.objects.filter(virtual_cluster=vc).values_list("sku_capacity", flat=True))
            queue = [
                t for t in Task.objects.filter(virtual_cluster=vc, status=Status.QUEUED).order_by("-pinned", "queued_at", "id")
                if sum(c // t.sku_count for c in capacities) >= t.replicas
            ]
            barrier = queue[0].pk if queue and (queue[0].pinned or vc.queue_policy == QueuePolicy.STRICT_FIFO) else None
            holding = set(Task.objects.filter(virtual_cluster=vc, status__in=HOLDING).values_list("pk", flat=True))
            before = self.barriers.get(vc.pk)
            if before and not self.reordered and barrier is not None and barrier == before[0]:
                assert holding <= before[1], f"{holding - before[1]} overtook {barrier}"
            current[vc.pk] = (barrier, holding)
        self.barriers, self.reordered = current, False

    @invariant()
    def nothing_placeable_still_waits(self):
        for vc in self.clusters:
            vc.refresh_from_db()
            nodes = list(Node.objects.filter(virtual_cluster=vc))
            free = []
            for node in nodes:
                used = sum(TaskInstance.objects.holding().filter(node=node).values_list("sku_count", flat=True))
                if node.schedulable:
                    free.append(node.sku_capacity - used)

            def fits(task, room):
                return sum(max(0, f) // task.sku_count for f in room) >= task.replicas

            capacities = [node.sku_capacity for node in nodes]
            queue = [
                t for t in Task.objects.filter(virtual_cluster=vc, status=Status.QUEUED).order_by("-pinned", "queued_at", "id")
                if fits(t, capacities)  # a task that could never fit waits without blocking
            ]
            if not queue:
                continue
            if queue[0].pinned or vc.queue_policy == QueuePolicy.STRICT_FIFO:
                assert not fits(queue[0], free), queue[0]
            else:
                assert not any(fits(t, free) for t in queue)


@pytest.mark.django_db
def test_scheduler_promises_hold_under_random_operations():
    Scheduling.people = (UserFactory(), ManagerFactory())
    run_state_machine_as_test(
        Scheduling,
        settings=settings(
            max_examples=15, stateful_step_count=20, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
