"""A Hypothesis state machine over runs: random starts, stops, failures, readiness and late reports.

Invariants after every step: a task's runs are numbered 1..n; only its current run may be unended, and it is
unended exactly while the task is queued or holds GPUs; an ended run keeps its instances (and archived logs);
a report about a run that is no longer current never changes the task.
"""

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from deploy_portal.messages import N_, Sentence
from scheduler.services import task_fail, task_instances_ready, task_start, task_stop
from tasks.exceptions import OperationRefused
from tasks.models import InstanceStatus, Task, TaskInstance, TaskRun
from tasks.states import HOLDING, Status
from tests.factories import NodeFactory, ProjectFactory, TaskFactory, UserFactory, VirtualClusterFactory

pytestmark = pytest.mark.django_db

TASKS = 3


class Runs(RuleBasedStateMachine):
    @initialize()
    def build(self):
        self.owner = UserFactory()
        vc = VirtualClusterFactory(users=[self.owner])
        NodeFactory(virtual_cluster=vc, sku_capacity=2)
        project = ProjectFactory(members=[self.owner])
        self.tasks = [TaskFactory(virtual_cluster=vc, project=project, owner=self.owner, sku_count=1) for _ in range(TASKS)]
        self.ended_instances = {}  # ended run id -> its instance ids, as they were when it ended

    def _task(self, which):
        return Task.objects.get(pk=self.tasks[which].pk)

    @rule(which=st.integers(0, TASKS - 1))
    def start(self, which):
        try:
            task_start(task=self._task(which), user=self.owner)
        except OperationRefused:
            pass

    @rule(which=st.integers(0, TASKS - 1))
    def stop(self, which):
        try:
            task_stop(task=self._task(which), user=self.owner)
        except OperationRefused:
            pass

    @rule(which=st.integers(0, TASKS - 1))
    def become_ready(self, which):
        task = self._task(which)
        TaskInstance.objects.filter(run_id=task.current_run_id).update(status=InstanceStatus.READY)
        task_instances_ready(task_id=task.pk, run_id=task.current_run_id)

    @rule(which=st.integers(0, TASKS - 1))
    def fail(self, which):
        task = self._task(which)
        task_fail(task_id=task.pk, run_id=task.current_run_id, reason=Sentence(N_("failed")))

    @rule(which=st.integers(0, TASKS - 1), ready=st.booleans())
    def late_report(self, which, ready):
        """A report about an earlier run lands now: nothing about the task may change."""
        task = self._task(which)
        old = TaskRun.objects.filter(task=task, ended_at__isnull=False).exclude(pk=task.current_run_id).first()
        if old is None:
            return
        before = (task.status, task.current_run_id, task.endpoint_port)
        TaskInstance.objects.filter(run=old).update(status=InstanceStatus.READY)
        if ready:
            assert task_instances_ready(task_id=task.pk, run_id=old.pk) is None
        else:
            assert task_fail(task_id=task.pk, run_id=old.pk, reason=Sentence(N_("failed"))) is None
        task = self._task(which)
        assert (task.status, task.current_run_id, task.endpoint_port) == before

    @invariant()
    def runs_are_numbered_and_only_the_current_one_is_open(self):
        if not hasattr(self, "tasks"):
            return
        for stale in self.tasks:
            task = Task.objects.get(pk=stale.pk)
            runs = list(TaskRun.objects.filter(task=task).order_by("number"))
            assert [run.number for run in runs] == list(range(1, len(runs) + 1))
            open_runs = [run.pk for run in runs if run.ended_at is None]
            if task.status in HOLDING or task.status == Status.QUEUED:
                assert open_runs == [task.current_run_id]
            else:
                assert open_runs == []
            for run in runs:
                ids = set(TaskInstance.objects.filter(run=run).values_list("pk", flat=True))
                if run.ended_at is not None:
                    assert self.ended_instances.setdefault(run.pk, ids) == ids  # kept, never replaced

    @invariant()
    def no_machine_is_over_allocated(self):
        if not hasattr(self, "tasks"):
            return
        held = sum(TaskInstance.objects.holding().filter(task__in=self.tasks).values_list("sku_count", flat=True))
        assert held <= 2


RunsTest = Runs.TestCase
RunsTest.settings = settings(
    max_examples=25, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
