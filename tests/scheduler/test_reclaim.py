"""Quotas, priorities and reclaim through the services and the pass, on the database."""

from datetime import timedelta

import pytest
from django.core import mail
from django.template.loader import render_to_string
from django.utils import timezone

from clusters.models import PriorityClass, ProjectQuota, QueuePolicy
from deploy_portal.messages import render
from scheduler.force_start import task_force_start, task_force_start_preview
from scheduler.selectors import queue_status
from scheduler.services import task_pin, task_start, task_stop
from tasks.exceptions import OperationRefused
from tasks.models import Task, TaskEvent
from tasks.states import Status
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def running(cluster, sku_count, project, *, minutes_ago, **fields):
    task = task_start(task=cluster.task(sku_count=sku_count, project=project, **fields), user=cluster.owner)
    assert task.status == Status.DEPLOYING
    Task.objects.filter(pk=task.pk).update(status=Status.RUNNING, started_at=timezone.now() - timedelta(minutes=minutes_ago))
    return task


@pytest.fixture
def lent(make_cluster):
    """One 8-SKU machine; proj-a is guaranteed 4, proj-b 4 and runs 8: 4 of them borrowed (the two recent 2s)."""
    cluster = make_cluster(8)
    cluster.a, cluster.b = ProjectFactory(name="proj-a"), ProjectFactory(name="proj-b")
    for project in (cluster.a, cluster.b):
        ProjectQuota.objects.create(virtual_cluster=cluster.vc, project=project, guaranteed_skus=4)
    owner = UserFactory(email="b@example.com")
    cluster.within = running(cluster, 4, cluster.b, minutes_ago=30, owner=owner)
    cluster.older = running(cluster, 2, cluster.b, minutes_ago=20, owner=owner)
    cluster.newer = running(cluster, 2, cluster.b, minutes_ago=10, owner=owner)
    return cluster


def test_without_reclaim_a_project_under_its_guarantee_waits_for_the_borrowed_skus(lent):
    task = task_start(task=lent.task(sku_count=2, project=lent.a), user=lent.owner)
    assert task.status == Status.QUEUED
    assert not Task.objects.filter(status=Status.KILLED).exists()


def test_reclaim_kills_the_most_recent_borrowed_task_of_another_project_and_says_why(
    lent, sent, django_capture_on_commit_callbacks
):
    lent.vc.reclaim = True
    lent.vc.save()
    with django_capture_on_commit_callbacks(execute=True):
        task = task_start(task=lent.task(sku_count=2, project=lent.a, name="wanted"), user=lent.owner)
    assert task.status == Status.DEPLOYING
    assert set(Task.objects.filter(status=Status.KILLED).values_list("pk", flat=True)) == {lent.newer.pk}
    event = TaskEvent.objects.get(task=lent.newer, to_status=Status.KILLED)
    assert event.operation == "reclaim"
    assert render(event.message) == "Killed: it ran on borrowed SKUs, reclaimed for project proj-a (for “wanted”)."
    assert ("teardown_task", lent.newer.pk) in sent and ("deploy_task", task.pk) in sent
    [notice] = mail.outbox
    assert notice.to == ["b@example.com"] and "reclaimed for project proj-a" in notice.body


def test_reclaim_never_kills_a_task_within_its_projects_guarantee(lent):
    lent.vc.reclaim = True
    lent.vc.save()
    task = task_start(task=lent.task(sku_count=6, project=lent.a), user=lent.owner)  # would borrow 2: no reclaim
    assert task.status == Status.QUEUED
    task = task_start(task=lent.task(sku_count=4, project=lent.a), user=lent.owner)
    assert task.status == Status.DEPLOYING  # within A's guarantee: both borrowed tasks go, the 4 within B's stays
    assert set(Task.objects.filter(status=Status.KILLED).values_list("pk", flat=True)) == {lent.older.pk, lent.newer.pk}


def test_a_borrower_over_its_limit_waits_with_the_quota_reason(make_cluster):
    cluster = make_cluster(8, 8)
    project = ProjectFactory(name="proj-a")
    ProjectQuota.objects.create(virtual_cluster=cluster.vc, project=project, guaranteed_skus=4, borrowing_limit=0)
    running(cluster, 4, project, minutes_ago=5)
    task = task_start(task=cluster.task(sku_count=2, project=project), user=cluster.owner)
    assert task.status == Status.QUEUED
    [vc] = queue_status(user=cluster.manager, virtual_cluster_id=cluster.vc.pk)
    assert vc["queue"][0]["reason_code"] == "quota"
    assert vc["queue"][0]["reason"].startswith("project proj-a has used 4/4 SKUs (guaranteed quota), may borrow 0")
    assert vc["quotas"] == [{"project": "proj-a", "used": 4, "guaranteed": 4, "borrowing_limit": 0}]
    sidebar = render_to_string("portal/_queue.html", {"clusters": [vc]})
    assert "proj-a" in sidebar and "4/4 SKU guaranteed" in sidebar and "borrows up to 0" in sidebar


def test_a_higher_priority_task_goes_first_and_the_queue_shows_it(make_cluster):
    cluster = make_cluster(4, policy=QueuePolicy.STRICT_FIFO)
    high = PriorityClass.objects.create(name="high", value=100)
    holder = task_start(task=cluster.task(sku_count=4), user=cluster.owner)
    first = task_start(task=cluster.task(sku_count=4, name="first"), user=cluster.owner)
    urgent = task_start(task=cluster.task(sku_count=4, name="urgent", priority_class=high), user=cluster.owner)
    assert Task.objects.get(pk=urgent.pk).priority == 100
    [vc] = queue_status(user=cluster.manager, virtual_cluster_id=cluster.vc.pk)
    assert [(e["name"], e["position"], e["priority"]) for e in vc["queue"]] == [("urgent", 1, 100), ("first", 2, 0)]
    task_stop(task=holder, user=cluster.owner)
    assert Task.objects.get(pk=urgent.pk).status == Status.DEPLOYING
    assert Task.objects.get(pk=first.pk).status == Status.QUEUED


@pytest.mark.parametrize("policy, starts", [(QueuePolicy.FAIR_SHARE, "for_b"), (QueuePolicy.STRICT_FIFO, "more_a")])
def test_fair_share_starts_the_least_served_project_first(make_cluster, policy, starts):
    cluster = make_cluster(8, policy=policy)
    a, b, c = ProjectFactory(name="proj-a"), ProjectFactory(name="proj-b"), ProjectFactory(name="proj-c")
    for project in (a, b):
        ProjectQuota.objects.create(virtual_cluster=cluster.vc, project=project, guaranteed_skus=4)
    running(cluster, 2, a, minutes_ago=5)  # A uses half its guarantee, B none of its own
    running(cluster, 4, c, minutes_ago=5)
    leaving = running(cluster, 2, c, minutes_ago=5)
    tasks = {
        "more_a": task_start(task=cluster.task(sku_count=2, project=a), user=cluster.owner),
        "for_b": task_start(task=cluster.task(sku_count=2, project=b), user=cluster.owner),
    }
    task_stop(task=leaving, user=cluster.owner)  # room for one of them, both within their guarantee
    started = {name for name, task in tasks.items() if Task.objects.get(pk=task.pk).status == Status.DEPLOYING}
    assert started == {starts}


def test_a_force_start_kills_only_tasks_on_borrowed_skus(lent):
    """B runs 8 on an 8-SKU machine, 4 of them within its guarantee: a 4-SKU force start of A takes the two
    borrowed 2s, never the 4 within B's guarantee (which, started first, would be the one task to kill without
    quotas: the fewest victims)."""
    forced = task_start(task=lent.task(sku_count=4, project=lent.a, name="forced"), user=lent.owner)
    task_pin(task=forced, user=lent.manager)
    preview = task_force_start_preview(task=forced, user=lent.manager)
    assert preview.fits and {v.pk for v in preview.victims} == {lent.older.pk, lent.newer.pk}
    task = task_force_start(task=forced, user=lent.manager, expected_victims=[v.pk for v in preview.victims])
    assert task.status == Status.DEPLOYING
    assert set(Task.objects.filter(status=Status.KILLED).values_list("pk", flat=True)) == {lent.older.pk, lent.newer.pk}
    assert Task.objects.get(pk=lent.within.pk).status == Status.RUNNING


def test_a_force_start_that_needs_a_task_within_its_guarantee_is_refused_with_nothing_killed(lent):
    forced = task_start(task=lent.task(sku_count=6, project=lent.a, name="forced"), user=lent.owner)
    task_pin(task=forced, user=lent.manager)
    preview = task_force_start_preview(task=forced, user=lent.manager)
    assert not preview.fits and "within their project's guaranteed quota are never killed" in preview.reason
    with pytest.raises(OperationRefused, match="killing every task on borrowed SKUs would not make room"):
        task_force_start(task=forced, user=lent.manager)
    assert not Task.objects.filter(status=Status.KILLED).exists()
    assert Task.objects.get(pk=forced.pk).status == Status.QUEUED


def test_without_quotas_a_force_start_still_kills_the_fewest(make_cluster):
    cluster = make_cluster(8)
    project = ProjectFactory(name="proj-a")
    big = running(cluster, 4, project, minutes_ago=30)
    for minutes in (20, 10):
        running(cluster, 2, project, minutes_ago=minutes)
    forced = task_start(task=cluster.task(sku_count=4, project=project, name="forced"), user=cluster.owner)
    task_pin(task=forced, user=cluster.manager)
    assert task_force_start(task=forced, user=cluster.manager).status == Status.DEPLOYING
    assert set(Task.objects.filter(status=Status.KILLED).values_list("pk", flat=True)) == {big.pk}
