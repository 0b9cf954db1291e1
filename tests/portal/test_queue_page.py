"""The queue page: every VC's whole order with the manager's controls, and the wait estimate from history."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from pytest_django.asserts import assertContains, assertNotContains

from scheduler.estimates import busy_intervals, estimate
from tasks.models import Task, TaskEvent
from tasks.services import task_create
from tasks.states import Status
from tests.factories import ProjectFactory, TaskFactory, UserFactory, task_data

pytestmark = pytest.mark.django_db
PAGE = reverse("portal:queue-page")


def _queued(world, name, *, owner=None, project=None, pinned=False, minutes_ago=10, **config):
    owner = owner or world.member
    task = task_create(user=owner, data=task_data(world, name=name, project=project or world.project, **config))
    Task.objects.filter(pk=task.pk).update(
        status=Status.QUEUED, pinned=pinned, queued_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return Task.objects.get(pk=task.pk)


def _history(world, starts, *, every_minutes=20):
    """``starts`` past tasks started from the queue one every ``every_minutes``, each enqueued while the one
    before it still waited (a busy queue)."""
    base = timezone.now() - timedelta(days=1)
    for index in range(starts):
        task = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member, status=Status.STOPPED)
        enqueued = base - timedelta(minutes=60)
        started = base + timedelta(minutes=every_minutes * index)
        for at, source, target in ((enqueued, Status.NOT_DEPLOYED, Status.QUEUED), (started, Status.QUEUED, Status.DEPLOYING)):
            event = TaskEvent.objects.create(task=task, from_status=source, to_status=target, operation="history")
            TaskEvent.objects.filter(pk=event.pk).update(created_at=at)


def test_the_estimate_needs_enough_history_and_counts_only_a_busy_queue():
    now = timezone.now()
    at = lambda minutes: now + timedelta(minutes=minutes)
    busy = [(at(-1), at(0)), (at(-2), at(20)), (at(5), at(40))]
    idle_gap = [(at(0), at(10)), (at(200), at(210))]  # the second came when nothing waited: not a busy interval
    assert busy_intervals(busy) == [1200.0, 1200.0]
    assert busy_intervals(idle_gap) == []
    assert estimate(2, [600.0] * 4) is None
    assert estimate(3, [600.0] * 5).seconds == 1800.0


def test_a_manager_sees_every_queue_in_order_with_pin_unpin_and_force_start(world, manager_client):
    first = _queued(world, "first", minutes_ago=30)
    second = _queued(world, "second", minutes_ago=5)
    pinned = _queued(world, "urgent", pinned=True, minutes_ago=1)
    response = manager_client.get(PAGE)
    html = response.content.decode()
    order = [html.index(f'data-task="{task.pk}"') for task in (pinned, first, second)]
    assert order == sorted(order)
    row = lambda task: html.split(f'data-task="{task.pk}"')[1].split("</tr>")[0]
    assert 'data-action="force_start"' in row(pinned) and 'data-action="unpin"' in row(pinned)
    assert 'data-action="pin"' not in row(first)  # one pinned task per queue
    assert "30\xa0minutes" in row(first) and "llm" in row(first) and "alice" in row(first)
    assert "no estimate: too little history" in row(first)


def test_members_see_their_vcs_queues_without_controls_or_other_projects_details(world, member_client):
    mine = _queued(world, "mine")
    bob = UserFactory(username="bob")
    vision = ProjectFactory(name="vision", members=[bob])
    world.vc.users.add(bob)
    theirs = _queued(world, "theirs", owner=bob, project=vision, mounts=[])
    response = member_client.get(PAGE)
    html = response.content.decode()
    row = lambda task: html.split(f'data-task="{task.pk}"')[1].split("</tr>")[0]
    assert f'href="/tasks/{mine.pk}/"' in row(mine)
    assert "vision" not in row(theirs) and "bob" not in row(theirs) and "/tasks/" not in row(theirs)
    assertNotContains(response, 'data-action="pin"')


def test_the_estimate_is_said_with_its_basis(world, manager_client):
    _history(world, 7, every_minutes=20)
    waiting = _queued(world, "waiting")
    _queued(world, "behind")
    response = manager_client.get(PAGE)
    html = response.content.decode()
    row = lambda task: html.split(f'data-task="{task.pk}"')[1].split("</tr>")[0]
    assert "about 20\xa0minutes" in row(waiting)
    assert "estimate from the last 6 starts from this queue while tasks waited: one every 20\xa0minutes" in row(waiting)
    assert "about 40\xa0minutes" in row(Task.objects.get(name="behind"))
    manager_client.cookies["django_language"] = "zh-hans"
    assertContains(manager_client.get(PAGE), "约 20\xa0分钟")


def test_the_queue_page_reads_in_a_fixed_number_of_queries(world, manager_client, django_assert_max_num_queries):
    for index in range(3):
        _queued(world, f"q{index}")
    manager_client.get(PAGE)
    for index in range(3, 12):
        _queued(world, f"q{index}")
    with django_assert_max_num_queries(16):
        manager_client.get(PAGE)


def test_a_pinned_task_blocked_by_unschedulable_machines_names_them_and_the_sidebar_counts_them(world, member_client):
    from clusters.models import Node

    Node.objects.filter(pk=world.nodes[1].pk).update(schedulable=False)
    task = task_create(user=world.member, data=task_data(world, name="wide", sku_count=8, replicas=2))
    Task.objects.filter(pk=task.pk).update(status=Status.QUEUED, pinned=True, queued_at=timezone.now())
    page = member_client.get(PAGE).content.decode()
    row = page.split(f'data-task="{task.pk}"')[1].split("</tr>")[0]
    assert "fits only once the unschedulable machines gpu-01 take tasks again" in row
    assert 'data-fact="free-gpus">8 / 8<' in page
    assert "8 SKUs on machines taken out of scheduling" in page
    api = member_client.get("/api/v1/queue/").json()
    vc = api["results"][0] if "results" in api else api[0]
    assert vc["unschedulable_skus"] == 8 and vc["queue"][0]["reason_code"] == "capacity"
