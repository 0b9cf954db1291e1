"""Reconcile heals every task it can: one task's refusal or surprise does not stop the others, nothing stays deploying."""

from datetime import timedelta

import pytest
from django.utils import timezone, translation

from deploy_portal.messages import N_, Sentence
from scheduler import jobs
from scheduler.runtimes.base import InstanceObservation, RuntimeFailure
from tasks.models import InstanceStatus, Task
from tasks.states import Status

pytestmark = pytest.mark.django_db


class Broken:
    """A runtime whose apply fails as ``error`` does, and which sees no workload at all."""

    def __init__(self, error):
        self.error = error
        self.applied = []

    def workloads(self):
        return []

    def snapshot(self):
        return None

    def apply(self, run):
        self.applied.append(run.task_id)
        raise self.error

    def observe(self, run, snapshot=None):
        return [
            InstanceObservation(index=i.index, status=InstanceStatus.PENDING, exists=False) for i in run.instances.all()
        ]


@pytest.fixture
def scene(placed, settings, monkeypatch):
    """A deploy that never happened (first), and a running task whose workload has vanished (second)."""
    settings.DEPLOY_TIMEOUT_SECONDS = 600
    unapplied = placed(name="unapplied")
    vanished = placed(name="vanished", status=Status.RUNNING)
    vanished.instances.update(handle="1234")

    def use(runtime):
        monkeypatch.setattr(jobs, "get_runtime", lambda: runtime)
        return runtime

    return unapplied, vanished, use


def status(task):
    return Task.objects.get(pk=task.pk).status


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"), KeyError("kubeconfig")])
def test_a_surprise_on_one_task_does_not_stop_the_pass(scene, error):
    unapplied, vanished, use = scene
    runtime = use(Broken(error))
    done = jobs.reconcile()
    assert runtime.applied == [unapplied.pk]
    assert status(unapplied) == Status.DEPLOYING  # tried again by the next pass, until its timeout
    assert status(vanished) == Status.FAILED and vanished.pk in done["observed"]


def test_a_deploy_that_never_happened_fails_once_past_the_timeout(scene):
    unapplied, _vanished, use = scene
    Task.objects.filter(pk=unapplied.pk).update(started_at=timezone.now() - timedelta(hours=2))
    runtime = use(Broken(PermissionError(13, "Permission denied")))
    jobs.reconcile()
    assert runtime.applied == []
    task = Task.objects.get(pk=unapplied.pk)
    assert task.status == Status.FAILED
    with translation.override("en"):
        assert str(task.status_message).startswith("The task did not become ready within 600 seconds")


def test_a_reapply_refused_for_good_fails_its_task_with_the_refusal(scene):
    unapplied, _vanished, use = scene
    use(Broken(RuntimeFailure(Sentence(N_("Kubernetes refused %(kind)s %(name)s: %(reason)s"),
                                       kind="Pod", name="dp-task-1-0", reason="exceeded quota"))))
    done = jobs.reconcile()
    task = Task.objects.get(pk=unapplied.pk)
    assert task.status == Status.FAILED and done["failed"] == [unapplied.pk]
    with translation.override("en"):
        assert str(task.status_message) == "Kubernetes refused Pod dp-task-1-0: exceeded quota"


class ApplyingMeanwhile(Broken):
    """Another worker's apply of ``task`` lands just before this pass reads the runtime: its snapshot is
    older than the handle. Apply here succeeds (it finds the workload there)."""

    def __init__(self, task):
        super().__init__(None)
        self.task = task

    def snapshot(self):
        self.task.instances.update(handle="applied-meanwhile")
        return {}

    def apply(self, run):
        self.applied.append(run.task_id)

    def observe(self, run, snapshot=None):
        if snapshot is not None:  # what the pass read before the apply landed
            return super().observe(run, snapshot)
        return [InstanceObservation(index=i.index, status=InstanceStatus.STARTING) for i in run.instances.all()]


def test_a_deploy_applied_while_the_pass_reads_the_runtime_is_not_taken_for_vanished(scene):
    unapplied, _vanished, use = scene
    runtime = use(ApplyingMeanwhile(unapplied))
    done = jobs.reconcile()
    assert status(unapplied) == Status.DEPLOYING and done["reapplied"] == [unapplied.pk]
    assert runtime.applied == [unapplied.pk]
