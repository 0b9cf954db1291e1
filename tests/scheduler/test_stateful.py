"""Random operations over random clusters (Hypothesis stateful): the scheduler's promises hold after every step.

After each step: no machine is over-allocated, at most one task per VC is pinned, only deploying/running
tasks hold SKUs (and ports), queued tasks are in SPEC's order (pinned, priority, arrival), nothing started
past a pinned task or a strict-FIFO head that still waits, and no queued task that the VC's policy would
let start still waits (checked against a brute-force oracle, not the scheduler's own code).

Some VCs have quotas for the two projects (and some of those reclaim): there a project under its guarantee
with a task that fits never waits behind borrowing, no borrower exceeds its limit by starting, a VC that
reclaims leaves no such task waiting that killing the others' borrowed tasks would let start, and reclaim
never takes a project below its guarantee.
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

from clusters.models import Node, PriorityClass, ProjectQuota, QueuePolicy, VirtualCluster
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
from tasks.models import InstanceStatus, Task, TaskEvent, TaskInstance
from tasks.states import HOLDING, STARTABLE, TRANSITIONS, Status
from tests.factories import ManagerFactory, NodeFactory, ProjectFactory, TaskFactory, UserFactory, VirtualClusterFactory

# Quotas of the two projects: (guaranteed SKUs of each, borrowing limit of the first or None, reclaim), or none.
quota_specs = st.one_of(
    st.none(), st.tuples(st.integers(0, 6), st.integers(0, 6), st.sampled_from((None, 0, 2)), st.booleans())
)
cluster_specs = st.lists(
    st.tuples(
        st.sampled_from(QueuePolicy.values),
        st.integers(1, 2),  # GPUs per SKU
        st.lists(st.integers(2, 6), min_size=1, max_size=3),  # SKU capacity of each machine
        quota_specs,
    ),
    min_size=1, max_size=2,
)
# (which VC, SKU count, replicas, which project, high priority): mostly small enough to contend, sometimes never fitting
demands = st.tuples(
    st.integers(0, 1), st.sampled_from((1, 2, 1, 3, 2, 4, 9)), st.sampled_from((1, 1, 2, 1, 4)), st.integers(0, 1),
    st.sampled_from((False, False, True)),
)


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
        self.forced = set()  # VCs where a force start happened
        self.last_event = 0  # the last TaskEvent checked
        self.reclaims = 0

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @initialize(specs=cluster_specs, demands=st.lists(demands, min_size=6, max_size=14))
    def build(self, specs, demands):
        self.projects = [ProjectFactory(), ProjectFactory()]
        self.high = PriorityClass.objects.create(name="high", value=10)
        for policy, sku_gpus, capacities, quotas in specs:
            vc = VirtualClusterFactory(queue_policy=policy, sku_gpus=sku_gpus, reclaim=bool(quotas and quotas[3]))
            for capacity in capacities:
                NodeFactory(virtual_cluster=vc, sku_capacity=capacity)
            if quotas:
                for project, guaranteed, limit in zip(self.projects, quotas[:2], (quotas[2], None)):
                    ProjectQuota.objects.create(
                        virtual_cluster=vc, project=project, guaranteed_skus=guaranteed, borrowing_limit=limit
                    )
            self.clusters.append(vc)
        for demand in demands:  # a loaded cluster from the first step: queues to pin, tasks to kill
            self._start(self.create(*demand))

    @rule(demand=demands)
    def create_and_start(self, demand):
        self._start(self.create(*demand))

    @rule(which=st.integers(0, 1), project=st.integers(0, 1))
    def create_and_start_small(self, which, project):  # the task that would slip past a waiting head, if anything could
        self._start(self.create(which, 1, 1, project, False))

    def create(self, which, sku_count, replicas, project, high):
        vc = self.clusters[which % len(self.clusters)]
        return TaskFactory(
            virtual_cluster=vc, sku_count=sku_count, replicas=replicas, owner=self.owner,
            project=self.projects[project], priority_class=self.high if high else None,
        )

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
        vc = next(vc for vc in self.clusters if vc.pk == task.virtual_cluster_id)
        self.forced.add(vc.pk)
        before = Snapshot(self.clusters, self.projects)
        mark = TaskEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        try:
            task_force_start(task=task, user=self.manager)
        except OperationRefused as refused:  # it could not fit even with every task it may kill killed
            assert Task.objects.get(pk=task.pk).status == Status.QUEUED
            assert not TaskEvent.objects.filter(pk__gt=mark, to_status=Status.KILLED).exists(), "a refusal killed"
            if "external port" not in str(refused):
                assert not fits(task, before._free(vc, before.killable(vc))), f"task {task.pk} could be force-started"
            return
        victims = set(TaskEvent.objects.filter(pk__gt=mark, operation="kill").values_list("task_id", flat=True))
        before.check_force_start(vc, task, victims)

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
        world = Snapshot(self.clusters, self.projects)
        reclaimed = list(TaskEvent.objects.filter(operation="reclaim", pk__gt=self.last_event))
        self.last_event = TaskEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        self.reclaims += len(reclaimed)
        self.counts = Counter(t.status for t in world.tasks) + Counter("pinned" for t in world.tasks if t.pinned)
        for vc in self.clusters:
            world.check_machines(vc)
            world.check_tasks(vc)
            world.check_queue_order(vc, self.enqueued, queue_status(user=self.manager, virtual_cluster_id=vc.pk, limit=None))
            world.check_nothing_placeable_waits(vc)
            world.check_reclaim(vc)
            world.check_reclaimed(vc, reclaimed)
            if vc.pk not in self.forced:  # a manager's force start may override a limit
                world.check_limits(vc)
            before = self.barriers.get(vc.pk)
            barrier, holding = world.barrier(vc), world.holding_ids(vc)
            if before and not self.reordered and barrier is not None and barrier == before[0]:
                assert not (overtook := world.overtaking(vc, barrier, holding - before[1], self.enqueued)), (
                    f"{overtook} overtook task {barrier}"
                )
            self.barriers[vc.pk] = (barrier, holding)
        self.reordered = False


class Snapshot:
    """Every row of the machine's clusters, read once per step, and the promises checked by brute force."""

    def __init__(self, clusters, projects):
        ids = [vc.pk for vc in clusters]
        self.policy = dict(VirtualCluster.objects.filter(pk__in=ids).values_list("pk", "queue_policy"))
        self.reclaims = set(VirtualCluster.objects.filter(pk__in=ids, reclaim=True).values_list("pk", flat=True))
        self.nodes = list(Node.objects.filter(virtual_cluster_id__in=ids).select_related("virtual_cluster"))
        self.tasks = list(
            Task.objects.filter(virtual_cluster_id__in=ids).order_by("-pinned", "-priority", "queued_at", "id")
        )
        self.instances = defaultdict(list)
        for instance in TaskInstance.objects.of_current_run().filter(task__virtual_cluster_id__in=ids):
            self.instances[instance.task_id].append(instance)
        self.quotas = defaultdict(dict)  # vc id -> {project id: (guaranteed, limit)}
        for quota in ProjectQuota.objects.filter(virtual_cluster_id__in=ids):
            self.quotas[quota.virtual_cluster_id][quota.project_id] = (quota.guaranteed_skus, quota.borrowing_limit)

    def _nodes(self, vc):
        return [n for n in self.nodes if n.virtual_cluster_id == vc.pk]

    def _holding(self, vc):
        return [t for t in self.tasks if t.virtual_cluster_id == vc.pk and t.status in HOLDING]

    def holding_ids(self, vc):
        return {t.pk for t in self._holding(vc)}

    def _used(self, node):
        return [i for t in self.tasks if t.status in HOLDING for i in self.instances[t.pk] if i.node_id == node.pk]

    def _free(self, vc, freed=()):
        """Free SKUs of each schedulable machine, with the instances of the tasks in ``freed`` given back."""
        gone = {i.pk for t in freed for i in self.instances[t.pk]}
        return [
            n.sku_capacity - sum(i.sku_count for i in self._used(n) if i.pk not in gone)
            for n in self._nodes(vc) if n.schedulable
        ]

    def _queue(self, vc):
        """The queued tasks in SPEC's order, less those that could never fit (they wait without blocking)."""
        capacities = [n.sku_capacity for n in self._nodes(vc)]
        return [
            t for t in self.tasks
            if t.virtual_cluster_id == vc.pk and t.status == Status.QUEUED and fits(t, capacities)
        ]

    def usage(self, vc, project_id):
        return sum(t.sku_count * t.replicas for t in self._holding(vc) if t.project_id == project_id)

    def _guarantee(self, vc, project_id):
        return self.quotas[vc.pk].get(project_id, (0, None))

    def overtaking(self, vc, barrier, started, enqueued):
        """Which of ``started`` (tasks that began holding while ``barrier`` waited at the head) overtook it.

        Not a task of a higher priority (ahead of it in line), nor, with quotas, one that joined the queue before
        it and keeps its project within its guarantee: it was taken in the first sweep, in its turn (the barrier
        is the first task *within* its guarantee, which a failure elsewhere can make an earlier one be)."""
        priority = {t.pk: t.priority for t in self.tasks}
        project = {t.pk: t.project_id for t in self.tasks}
        arrival = {pk: i for i, pk in enumerate(enqueued)}
        overtook = set()
        for pk in started:
            if priority[pk] > priority[barrier]:
                continue
            ahead = arrival.get(pk, len(arrival)) < arrival.get(barrier, -1)
            guaranteed = self._guarantee(vc, project[pk])[0]
            if self.quotas[vc.pk] and ahead and self.usage(vc, project[pk]) <= guaranteed:
                continue
            overtook.add(pk)
        return overtook

    def within(self, vc, task):
        """Whether ``task`` starting now keeps its project within its guarantee (the first sweep)."""
        return self.usage(vc, task.project_id) + task.sku_count * task.replicas <= self._guarantee(vc, task.project_id)[0]

    def over_limit(self, vc, task):
        guaranteed, limit = self._guarantee(vc, task.project_id)
        return limit is not None and self.usage(vc, task.project_id) + task.sku_count * task.replicas > guaranteed + limit

    def _heads(self, vc, queue):
        """The tasks the policy must have tried, in order, among ``queue`` (one sweep's tasks, pinned aside)."""
        policy = self.policy[vc.pk]
        if policy == QueuePolicy.STRICT_FIFO:
            return queue[:1]
        if policy == QueuePolicy.FAIR_SHARE:  # each project's first: it holds back that project's others
            first = {}
            for task in queue:
                first.setdefault(task.project_id, task)
            return list(first.values())
        return queue

    def barrier(self, vc):
        queue = self._queue(vc)
        if queue and queue[0].pinned:
            return queue[0].pk
        if self.quotas[vc.pk]:
            queue = [t for t in queue if self.within(vc, t)]
        strict = self.policy[vc.pk] == QueuePolicy.STRICT_FIFO
        return queue[0].pk if queue and strict else None

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
        assert [e["position"] for e in shown["queue"]] == list(range(1, len(entries) + 1))
        priority = {t.pk: t.priority for t in self.tasks}
        pinned = [t.pk for t in self.tasks if t.virtual_cluster_id == vc.pk and t.pinned]
        arrived = sorted((i for i in enqueued if i in set(entries) and i not in pinned), key=lambda i: -priority[i])
        if self.quotas[vc.pk] or self.policy[vc.pk] == QueuePolicy.FAIR_SHARE:
            assert entries[:len(pinned)] == pinned and sorted(entries) == sorted(pinned + arrived)  # decided order
        else:
            assert entries == pinned + arrived

    def check_nothing_placeable_waits(self, vc):
        free = self._free(vc)
        queue = self._queue(vc)
        if not queue:
            return
        if queue[0].pinned:
            assert not fits(queue[0], free) or self.over_limit(vc, queue[0]), f"pinned task {queue[0].pk} could start"
            return
        if not self.quotas[vc.pk]:
            for task in self._heads(vc, queue):
                assert not fits(task, free), f"task {task.pk} could start"
            return
        within = [t for t in queue if self.within(vc, t)]
        for task in self._heads(vc, within):  # nothing borrowing is in their way
            assert not fits(task, free), f"task {task.pk}, within its guarantee, could start"
        if within and self.policy[vc.pk] == QueuePolicy.STRICT_FIFO:
            return  # the head within its guarantee holds back the borrowers too
        borrowers = [t for t in queue if not self.within(vc, t)]
        for task in self._heads(vc, [t for t in borrowers if not self.over_limit(vc, t)]):
            if self.policy[vc.pk] != QueuePolicy.BEST_EFFORT_FIFO and any(
                self.over_limit(vc, t) for t in borrowers[:borrowers.index(task)] if t.project_id == task.project_id
            ):
                continue  # its project is held back behind its own task over the limit
            assert not fits(task, free), f"task {task.pk} could borrow idle SKUs"

    def _borrowed(self, vc):
        """The holding tasks wholly beyond their project's guarantee, the longest-running first counted within it."""
        used, found = defaultdict(int), []
        for task in sorted(self._holding(vc), key=lambda t: (t.started_at, t.pk)):
            if used[task.project_id] >= self._guarantee(vc, task.project_id)[0]:
                found.append(task)
            used[task.project_id] += task.sku_count * task.replicas
        return found

    def killable(self, vc):
        """The tasks a force start may kill: with quotas, only those on borrowed SKUs."""
        return self._borrowed(vc) if self.quotas[vc.pk] else self._holding(vc)

    def check_force_start(self, vc, task, victims):
        """The victims (task ids) of a force start of ``task``, against this snapshot taken before it: each one
        killable, together they make room, and none could be spared (minimal by removal)."""
        killable = {t.pk: t for t in self.killable(vc)}
        assert victims <= killable.keys(), f"force start killed {victims - killable.keys()}, within a guarantee"
        chosen = [killable[pk] for pk in victims]
        assert fits(task, self._free(vc, chosen)), f"task {task.pk} was force-started without room"
        for spared in chosen:
            others = [t for t in chosen if t.pk != spared.pk]
            assert not fits(task, self._free(vc, others)), f"victim {spared.pk} of task {task.pk} could be spared"

    def check_limits(self, vc):
        for project_id, (guaranteed, limit) in self.quotas[vc.pk].items():
            assert limit is None or self.usage(vc, project_id) <= guaranteed + limit, "a project borrowed past its limit"

    def check_reclaim(self, vc):
        if vc.pk not in self.reclaims or not self.quotas[vc.pk]:
            return
        queue = self._queue(vc)
        if not queue or queue[0].pinned:
            return
        within = [t for t in queue if self.within(vc, t)]
        borrowed = self._borrowed(vc)
        for task in self._heads(vc, within):
            others = [t for t in borrowed if t.project_id != task.project_id]
            assert not fits(task, self._free(vc, others)), f"task {task.pk} could start by reclaiming borrowed SKUs"

    def check_reclaimed(self, vc, events):
        """Reclaim never took a project below its guarantee."""
        victims = {e.task_id for e in events}
        for project_id in {t.project_id for t in self.tasks if t.pk in victims and t.virtual_cluster_id == vc.pk}:
            assert self.usage(vc, project_id) >= self._guarantee(vc, project_id)[0], "reclaim took a guarantee"


def fits(task, free_blocks):
    return sum(max(0, f) // task.sku_count for f in free_blocks) >= task.replicas


@pytest.mark.django_db
def test_scheduler_promises_hold_under_random_operations():
    Scheduling.people = (UserFactory(), ManagerFactory())
    # Derandomized: the suite explores the same 8 examples on every run, so a CI run is reproducible. The
    # counterexample ``--hypothesis-seed=129889372613470743691543630308375673326`` once found (without
    # derandomize) was the oracle's: a task ahead of the head in line, within its guarantee after a failure freed
    # its project's SKUs, read as overtaking (``Snapshot.overtaking``); test_quotas.py's
    # test_an_earlier_task_within_its_guarantee_is_not_an_overtaking works that case by hand.
    run_state_machine_as_test(
        Scheduling,
        settings=settings(
            max_examples=8, stateful_step_count=30, deadline=None, derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
