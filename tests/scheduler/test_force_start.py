"""Force start: managers only, the pinned task only; minimal victims, preview equals deed, refusals kill nothing."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from deploy_portal.messages import render
from scheduler.force_start import task_force_start_preview
from scheduler.services import task_force_start, task_pin, task_start
from tasks.exceptions import InvalidTransition, OperationRefused
from tasks.models import Task, TaskEvent
from tasks.states import Status
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def running(cluster, sku_count, *, minutes_ago, **fields):
    task = task_start(task=cluster.task(sku_count=sku_count, **fields), user=cluster.owner)
    assert task.status == Status.DEPLOYING
    Task.objects.filter(pk=task.pk).update(status=Status.RUNNING, started_at=timezone.now() - timedelta(minutes=minutes_ago))
    return task


def pinned(cluster, sku_count, replicas=1):
    task = task_start(task=cluster.task(sku_count=sku_count, replicas=replicas, name="urgent"), user=cluster.owner)
    assert task.status == Status.QUEUED
    return task_pin(task=task, user=cluster.manager)


@pytest.fixture
def full(make_cluster):
    """Two full 8-SKU machines: n0 holds old (4) + mid (2) + new (2); n1 holds big (6) + newest (2)."""
    cluster = make_cluster(8, 8)
    owners = [UserFactory(email=f"owner{i}@example.com") for i in range(5)]
    # Started in the order best fit lays them out as above; started_at then says who is recent.
    cluster.old = running(cluster, 4, minutes_ago=50, owner=owners[0])
    cluster.big = running(cluster, 6, minutes_ago=40, owner=owners[1])
    cluster.newest = running(cluster, 2, minutes_ago=10, owner=owners[4])
    cluster.mid = running(cluster, 2, minutes_ago=30, owner=owners[2])
    cluster.new = running(cluster, 2, minutes_ago=20, owner=owners[3])
    layout = {t.pk: t.instances.get().node_id for t in (cluster.old, cluster.big, cluster.newest, cluster.mid, cluster.new)}
    n0, n1 = (node.pk for node in cluster.nodes)
    assert layout == {cluster.old.pk: n0, cluster.mid.pk: n0, cluster.new.pk: n0, cluster.big.pk: n1, cluster.newest.pk: n1}
    return cluster


def killed():
    return set(Task.objects.filter(status=Status.KILLED).values_list("pk", flat=True))


def test_preview_lists_the_minimal_victims_and_the_force_start_kills_exactly_them(full, sent, django_capture_on_commit_callbacks):
    urgent = pinned(full, 4)
    preview = task_force_start_preview(task=urgent, user=full.manager)
    # One victim beats the more recent pair (new + mid); of the single ones (old, big) big started last.
    assert preview.fits and [t.pk for t in preview.victims] == [full.big.pk]
    assert "“" + full.big.name + "”" in preview.reason
    with django_capture_on_commit_callbacks(execute=True):
        started = task_force_start(task=urgent, user=full.manager)
    assert (started.status, started.pinned) == (Status.DEPLOYING, False)
    assert killed() == {full.big.pk}
    assert started.instances.get().node_id == full.nodes[1].pk
    assert ("teardown_task", full.big.pk) in sent and ("deploy_task", urgent.pk) in sent


def test_two_victims_when_no_single_task_frees_enough_the_newest_first(full):
    urgent = pinned(full, 8)
    preview = task_force_start_preview(task=urgent, user=full.manager)
    # n1 frees 8 with big + newest; n0 would need three victims.
    assert [t.pk for t in preview.victims] == [full.newest.pk, full.big.pk]
    task_force_start(task=urgent, user=full.manager)
    assert killed() == {full.newest.pk, full.big.pk}


def test_victims_get_an_event_naming_the_forced_task_and_the_manager_and_a_mail(full, django_capture_on_commit_callbacks):
    urgent = pinned(full, 4)
    with django_capture_on_commit_callbacks(execute=True):
        task_force_start(task=urgent, user=full.manager)
    event = TaskEvent.objects.filter(task=full.big).last()
    assert (event.operation, event.from_status, event.to_status, event.actor) == (
        "kill", Status.RUNNING, Status.KILLED, full.manager,
    )
    assert "“urgent”" in render(event.message) and full.manager.username in render(event.message)
    victim = Task.objects.get(pk=full.big.pk)
    assert render(victim.status_message) == render(event.message) and victim.endpoint_port is None
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [full.big.owner.email]
    assert "urgent" in mail.outbox[0].body and full.manager.username in mail.outbox[0].body
    forced = TaskEvent.objects.filter(task=urgent).last()
    assert (forced.operation, forced.actor) == ("force_start", full.manager)


def test_refused_with_nothing_killed_when_it_could_not_fit_the_empty_vc(full):
    urgent = task_start(task=full.task(sku_count=8, name="urgent"), user=full.owner)
    task_pin(task=urgent, user=full.manager)
    Task.objects.filter(pk=urgent.pk).update(replicas=3)  # grown after it was queued: 3 × 8 on two machines
    preview = task_force_start_preview(task=urgent, user=full.manager)
    assert not preview.fits and preview.victims == []
    assert "could host only 2" in preview.reason
    with pytest.raises(OperationRefused, match="could host only 2"):
        task_force_start(task=urgent, user=full.manager)
    assert killed() == set()
    assert Task.objects.get(pk=urgent.pk).status == Status.QUEUED


def test_only_tasks_of_the_same_vc_are_victims(full, make_cluster):
    other = make_cluster(8)
    elsewhere = running(other, 8, minutes_ago=1)
    urgent = pinned(full, 8)
    task_force_start(task=urgent, user=full.manager)
    assert Task.objects.get(pk=elsewhere.pk).status == Status.RUNNING


def test_managers_only_and_the_pinned_task_only(full):
    urgent = pinned(full, 4)
    with pytest.raises(PermissionDenied):
        task_force_start_preview(task=urgent, user=full.owner)
    with pytest.raises(PermissionDenied):
        task_force_start(task=urgent, user=full.owner)
    waiting = task_start(task=full.task(sku_count=4), user=full.owner)
    with pytest.raises(InvalidTransition, match="not pinned"):
        task_force_start(task=waiting, user=full.manager)
    assert killed() == set()


def pinned_on_port(cluster, sku_count, port):
    task = cluster.task(sku_count=sku_count, name="urgent", expose_port=True, external_port=port)
    assert task_start(task=task, user=cluster.owner).status == Status.QUEUED
    return task_pin(task=task, user=cluster.manager)


def test_refused_with_nothing_killed_when_its_external_port_is_held_outside_the_victims(full, make_cluster):
    urgent = pinned_on_port(full, 4, 31500)
    holder = running(make_cluster(8), 1, minutes_ago=1, name="port-holder", expose_port=True, external_port=31500)
    preview = task_force_start_preview(task=urgent, user=full.manager)
    assert not preview.fits and preview.victims == []
    assert "31500" in preview.reason and "“port-holder”" in preview.reason
    with pytest.raises(OperationRefused, match="“port-holder”") as refused:
        task_force_start(task=urgent, user=full.manager)
    assert str(refused.value.args[0]) == str(preview.reason)
    assert killed() == set()
    assert Task.objects.get(pk=urgent.pk).status == Status.QUEUED
    assert Task.objects.get(pk=holder.pk).status == Status.RUNNING


def test_a_victim_holding_its_external_port_frees_it(full):
    urgent = pinned_on_port(full, 4, 31501)
    # As if big had been started on that port first (a start is refused a port a running task holds).
    Task.objects.filter(pk=full.big.pk).update(expose_port=True, external_port=31501, endpoint_port=31501)
    preview = task_force_start_preview(task=urgent, user=full.manager)
    assert preview.fits and [t.pk for t in preview.victims] == [full.big.pk]
    started = task_force_start(task=urgent, user=full.manager)
    assert killed() == {full.big.pk}
    assert (started.status, started.endpoint_port) == (Status.DEPLOYING, 31501)
