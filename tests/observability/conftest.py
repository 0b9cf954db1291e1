"""Fixtures for observability: a known GPU world built through the services, with its timeline's times set."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone, translation

from deploy_portal.messages import N_, Sentence
from scheduler import services
from scheduler.force_start import task_force_start
from observability.models import AllocationSample, ClusterSample
from tasks.models import InstanceStatus, TaskEvent
from tasks.states import Status
from tests.factories import ManagerFactory, NodeFactory, ProjectFactory, TaskFactory, UserFactory, VirtualClusterFactory


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def quiet_celery(monkeypatch):
    """The work sent after commit goes nowhere (no runtime here): only the database's world counts."""
    from scheduler import tasks

    for name in ("deploy_task", "teardown_task"):
        monkeypatch.setattr(getattr(tasks, name), "delay", lambda *args: None)


def _event(task, to_status):
    return TaskEvent.objects.filter(task=task, to_status=to_status).exclude(from_status=to_status).latest("id")


def _after(event, earlier, seconds):
    TaskEvent.objects.filter(pk=event.pk).update(created_at=earlier.created_at + timedelta(seconds=seconds))


@pytest.fixture
def known_world(db, quiet_celery):
    """h100: one machine of 8 GPUs, 6 allocated (4 running, 2 deploying), 2 queued (one pinned), 1 failed;
    a100: one machine of 2 GPUs and a cordoned one of 4; one task killed by a force start that waited 120 s.

    The running task took 30 s from placement to ready.
    """
    owner, manager = UserFactory(username="olga"), ManagerFactory(username="boss")
    h100 = VirtualClusterFactory(name="h100")
    NodeFactory(virtual_cluster=h100, name="h100-0", sku_capacity=8)

    def task(vc, sku_count, name):
        return TaskFactory(virtual_cluster=vc, sku_count=sku_count, owner=owner, name=name)

    failed = services.task_start(task=task(h100, 2, "broken"), user=owner)
    services.task_fail(task_id=failed.pk, reason=Sentence(
        N_("The process exited with code %(code)s — check the command and the log."), code=3,
    ))
    running = services.task_start(task=task(h100, 4, "serving"), user=owner)
    running.instances.update(status=InstanceStatus.READY)
    services.task_instances_ready(task_id=running.pk)
    _after(_event(running, Status.RUNNING), _event(running, Status.DEPLOYING), 30)
    deploying = services.task_start(task=task(h100, 2, "loading"), user=owner)
    first = services.task_start(task=task(h100, 4, "waiting-1"), user=owner)
    second = services.task_start(task=task(h100, 4, "waiting-2"), user=owner)
    services.task_pin(task=second, user=manager)

    a100 = VirtualClusterFactory(name="a100")
    NodeFactory(virtual_cluster=a100, name="a100-0", sku_capacity=2)
    NodeFactory(virtual_cluster=a100, name="a100-1", sku_capacity=4, schedulable=False)
    victim = services.task_start(task=task(a100, 2, "victim"), user=owner)
    forced = services.task_start(task=task(a100, 2, "forced"), user=owner)
    services.task_pin(task=forced, user=manager)
    task_force_start(task=forced, user=manager)
    _after(_event(forced, Status.DEPLOYING), _event(forced, Status.QUEUED), 120)

    assert [t.refresh_from_db() or t.status for t in (running, deploying, first, second, victim, forced)] == [
        Status.RUNNING, Status.DEPLOYING, Status.QUEUED, Status.QUEUED, Status.KILLED, Status.DEPLOYING,
    ]
    now = timezone.now()
    return SimpleNamespace(h100=h100, a100=a100, owner=owner, manager=manager, now=now)


@pytest.fixture
def history(world):
    """The world's last hour: alice holds 2 GPUs of llm, bob 4 of vision; a VC alice may not see."""
    other_project, other_user = ProjectFactory(name="vision"), UserFactory(username="bob")
    secret_vc = VirtualClusterFactory(name="secret")
    now = timezone.now().replace(second=0, microsecond=0)
    rows = []
    for i in range(1, 61):  # the hour before now: alice holds 2 GPUs of llm, bob 4 of vision
        at = now - timedelta(minutes=i)
        rows.append(AllocationSample(virtual_cluster=world.vc, project=world.project, owner=world.member, at=at, gpu_seconds=120))
        rows.append(AllocationSample(virtual_cluster=world.vc, project=other_project, owner=other_user, at=at, gpu_seconds=240))
        ClusterSample.objects.create(virtual_cluster=world.vc, at=at, total_gpu_seconds=16 * 60, allocated_gpu_seconds=6 * 60)
    AllocationSample.objects.bulk_create(rows)
    return world, secret_vc
