"""Allocation history: minute samples of the known world, their hourly compaction, the reads over them."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from observability import selectors, services
from observability.models import HOUR, MINUTE, AllocationSample, ClusterSample
from tests.factories import ProjectFactory, UserFactory, VirtualClusterFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 31, 12, 0, 30, tzinfo=UTC)


def test_a_minute_sample_holds_the_gpu_seconds_of_the_known_world(known_world):
    assert services.allocation_sample(now=NOW) == (2, 3)
    h100 = ClusterSample.objects.get(virtual_cluster=known_world.h100)
    assert (h100.at, h100.span_seconds) == (NOW.replace(second=0), MINUTE)
    assert (h100.total_gpu_seconds, h100.allocated_gpu_seconds, h100.queued_task_seconds) == (8 * 60, 6 * 60, 2 * 60)
    a100 = ClusterSample.objects.get(virtual_cluster=known_world.a100)
    assert (a100.total_gpu_seconds, a100.allocated_gpu_seconds, a100.queued_task_seconds) == (2 * 60, 2 * 60, 0)
    per_task_project = sorted(AllocationSample.objects.values_list("gpu_seconds", flat=True))
    assert per_task_project == [2 * 60, 2 * 60, 4 * 60]  # serving (4), loading (2) on h100; forced (2) on a100
    # The same minute sampled again (beat delivered twice) changes nothing.
    assert services.allocation_sample(now=NOW + timedelta(seconds=20))
    assert ClusterSample.objects.count() == 2 and AllocationSample.objects.count() == 3


def minutes(vc, project, owner, start, count, gpus):
    AllocationSample.objects.bulk_create(
        AllocationSample(virtual_cluster=vc, project=project, owner=owner, at=start + timedelta(minutes=i),
                         gpu_seconds=gpus(i) * MINUTE)
        for i in range(count)
    )
    ClusterSample.objects.bulk_create(
        ClusterSample(virtual_cluster=vc, at=start + timedelta(minutes=i), total_gpu_seconds=8 * MINUTE,
                      allocated_gpu_seconds=gpus(i) * MINUTE, queued_task_seconds=(i % 3) * MINUTE)
        for i in range(count)
    )


def raw_gpu_hours(by, since, until, span=MINUTE):
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {by}_id, SUM(gpu_seconds) / 3600.0 FROM observability_allocationsample "
            "WHERE at >= %s AND at < %s AND span_seconds = %s GROUP BY 1", [since, until, span],
        )
        return {key: float(hours) for key, hours in cursor.fetchall()}


def test_hours_are_rolled_up_and_only_the_last_week_kept_in_minutes():
    vc, project, owner = VirtualClusterFactory(), ProjectFactory(), UserFactory()
    start = NOW.replace(minute=0, second=0) - timedelta(days=9)
    minutes(vc, project, owner, start, 3 * 24 * 60, lambda i: i % 7)  # days 9..6 before now
    month = (start, NOW)
    before = {by: raw_gpu_hours(by, *month) for by in ("project", "owner")}
    totals = ClusterSample.objects.values_list("allocated_gpu_seconds", "queued_task_seconds")
    before_totals = [sum(column) for column in zip(*totals)]

    assert services.samples_compact(now=NOW) == (2 * 72, 2 * 2 * 24 * 60)  # 72 hours in both tables; 2 days of minutes

    cutoff = services.compaction_cutoff(NOW)
    assert cutoff == NOW.replace(minute=0, second=0) - timedelta(days=7)
    assert not ClusterSample.objects.filter(span_seconds=MINUTE, at__lt=cutoff).exists()
    assert ClusterSample.objects.filter(span_seconds=MINUTE, at__gte=cutoff).count() == 24 * 60
    hourly = ClusterSample.objects.filter(span_seconds=HOUR).values_list("allocated_gpu_seconds", "queued_task_seconds")
    assert [sum(column) for column in zip(*hourly)] == before_totals
    hourly_hours = {
        by: raw_gpu_hours(by, *month, span=HOUR) for by in ("project", "owner")
    }
    assert hourly_hours == before
    rows = selectors.gpu_hours(since=month[0], until=month[1], by="project")
    assert [(row["id"], row["gpu_hours"]) for row in rows] == [(project.pk, before["project"][project.pk])]
    assert services.samples_compact(now=NOW) == (0, 0)  # nothing new to roll up, nothing more to delete


def test_gpu_hours_add_the_minutes_after_the_rolled_up_hours():
    vc, project, owner = VirtualClusterFactory(), ProjectFactory(), UserFactory()
    start = NOW.replace(minute=0, second=0) - timedelta(hours=3)
    minutes(vc, project, owner, start, 3 * 60 + 20, lambda i: 2)  # up to 20 minutes past the last whole hour
    services.samples_compact(now=NOW.replace(minute=4))  # 12:04: the hour before 11:00 has settled, not 11:00's
    assert selectors.rolled_up_until() == NOW.replace(minute=0, second=0) - timedelta(hours=1)
    rows = selectors.gpu_hours(since=start, until=NOW + timedelta(hours=1), by="owner")
    assert [(row["id"], row["gpu_hours"]) for row in rows] == [(owner.pk, 2 * (3 + 20 / 60))]
    points = selectors.utilisation(virtual_cluster_id=vc.pk, until=NOW.replace(minute=30), range_name="7d")
    assert [p.allocated_gpus for p in points] == [2, 2, 2, 2]


def test_utilisation_averages_each_step_and_leaves_unsampled_steps_out():
    vc, project, owner = VirtualClusterFactory(), ProjectFactory(), UserFactory()
    start = NOW.replace(second=0) - timedelta(hours=2)
    minutes(vc, project, owner, start, 20, lambda i: 4 if i < 10 else 6)  # 20 minutes, then nothing
    points = selectors.utilisation(virtual_cluster_id=vc.pk, until=NOW.replace(second=0), range_name="24h")
    assert [(p.total_gpus, p.allocated_gpus, p.queued_tasks) for p in points] == [(8, 4, 0.9), (8, 6, 1.0)]
    assert points[1].at - points[0].at == timedelta(minutes=10)
