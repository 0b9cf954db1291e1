"""Reads of the allocation history: a VC's utilisation over a range, GPU-hours per project and per user.

Each answers from the samples alone in two queries, whatever the range: the hourly rows of the rolled-up
hours and the minute rows after them (``services.samples_compact``); the 24-hour plot reads minutes only.
Durations of the stages of a start come from ``timeline``.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Max, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from clusters.models import Project, VirtualCluster
from tasks.models import Task
from tasks.states import Status

from . import timeline
from .models import HOUR, MINUTE, AllocationSample, ClusterSample, GpuUtilisationSample

# A range of the utilisation page -> (its length, the width of one point of the plot).
RANGES = {
    "24h": (timedelta(hours=24), timedelta(minutes=10)),
    "7d": (timedelta(days=7), timedelta(hours=1)),
    "30d": (timedelta(days=30), timedelta(hours=4)),
}


def rolled_up_until():
    """Every hour before this one has its hourly rows (None: none has been rolled up yet)."""
    last = ClusterSample.objects.filter(span_seconds=HOUR).aggregate(last=Max("at"))["last"]
    return last + timedelta(hours=1) if last is not None else None


def _period(since, until, *, fine=False):
    """The samples of [since, until): hourly rows up to the rolled-up hours, minutes after; minutes only if ``fine``."""
    rolled = None if fine else rolled_up_until()
    if rolled is None:
        return Q(span_seconds=MINUTE, at__gte=since, at__lt=until)
    return Q(span_seconds=HOUR, at__gte=since, at__lt=min(until, rolled)) | Q(
        span_seconds=MINUTE, at__gte=max(since, rolled), at__lt=until
    )


@dataclass(frozen=True)
class Point:
    """One step of the plot: average GPUs offered and held, and the average queue length over it."""

    at: object
    total_gpus: float
    allocated_gpus: float
    queued_tasks: float


def utilisation(*, virtual_cluster_id, until, range_name="24h"):
    """The VC's allocated vs total GPUs and queue length over ``range_name`` up to ``until``, one Point per step.

    Each step averages the samples that start in it (GPU-seconds over seconds sampled); a step with no
    sample (nothing was sampled: beat was down) is left out, so the plot shows a gap rather than a zero.
    """
    length, step = RANGES[range_name]
    since = until - length
    rows = ClusterSample.objects.filter(
        _period(since, until, fine=step < timedelta(hours=1)), virtual_cluster_id=virtual_cluster_id
    ).order_by().values_list("at", "span_seconds", "total_gpu_seconds", "allocated_gpu_seconds", "queued_task_seconds")
    step_seconds = step.total_seconds()
    buckets = {}
    for at, span, total, allocated, queued in rows:
        index = int(at.timestamp() // step_seconds)  # steps aligned to the clock, not to the range's start
        bucket = buckets.setdefault(index, [0, 0, 0, 0])
        bucket[0] += span
        bucket[1] += total
        bucket[2] += allocated
        bucket[3] += queued
    return [
        Point(
            at=datetime.fromtimestamp(index * step_seconds, tz=UTC), total_gpus=total / span, allocated_gpus=allocated / span, queued_tasks=queued / span,
        )
        for index, (span, total, allocated, queued) in sorted(buckets.items())
    ]


def wait_seconds(*, virtual_cluster_id, until, range_name="24h"):
    """How long each task placed from the queue of the VC had waited, over the range (for a distribution)."""
    length, _step = RANGES[range_name]
    return timeline.stage_seconds("wait", virtual_cluster_id=virtual_cluster_id, since=until - length)


def day_period(since, until):
    """[start, end) of the days ``since`` to ``until`` (dates, the end day included) in the current time zone."""
    zone = timezone.get_current_timezone()
    return datetime.combine(since, time.min, tzinfo=zone), datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone)


def gpu_hours(*, since, until, by, virtual_cluster_ids=None, project_ids=None):
    """GPU-hours held from ``since`` to ``until``, summed per project (``by="project"``) or per user (``"owner"``).

    Rows ``{"id", "name", "virtual_cluster", "gpu_hours"}``, most first. A rolled-up hour counts whole when
    it starts in the period (the portal's periods are whole days). ``virtual_cluster_ids`` / ``project_ids`` narrow it.
    """
    rows = AllocationSample.objects.filter(_period(since, until))
    if virtual_cluster_ids is not None:
        rows = rows.filter(virtual_cluster_id__in=list(virtual_cluster_ids))
    if project_ids is not None:
        rows = rows.filter(project_id__in=list(project_ids))
    # Summed on the ids alone, then named: the names are joined to a dozen rows, not to every sample.
    sums = list(
        rows.order_by().values_list(f"{by}_id", "virtual_cluster_id").annotate(gpu_seconds=Sum("gpu_seconds"))
    )
    owners = by == "owner"
    named = (get_user_model().objects if owners else Project.objects).filter(pk__in={key for key, _vc, _s in sums})
    names = dict(named.values_list("pk", "username" if owners else "name"))
    clusters = dict(VirtualCluster.objects.filter(pk__in={vc for _key, vc, _s in sums}).values_list("pk", "name"))
    result = [
        {"id": key, "name": names[key], "virtual_cluster": clusters[vc], "gpu_hours": seconds / 3600}
        for key, vc, seconds in sums
    ]
    return sorted(result, key=lambda row: (-row["gpu_hours"], row["name"], row["virtual_cluster"]))


def latest_gpu_utilisation(instance_ids):
    """{instance id: its latest GpuUtilisationSample} for ``instance_ids``, in one query."""
    latest = GpuUtilisationSample.objects.filter(instance_id=OuterRef("instance_id")).order_by("-at").values("pk")[:1]
    rows = GpuUtilisationSample.objects.filter(instance_id__in=list(instance_ids), pk=Subquery(latest))
    return {sample.instance_id: sample for sample in rows}


def idle_tasks(*, now, task_ids=None, hours=None, percent=None):
    """{task id: the highest utilisation seen} of the running tasks idle for ``hours``: running that long,
    sampled in that time, and no sample of any of their instances at or above ``percent``."""
    hours = settings.IDLE_HOURS if hours is None else hours
    percent = settings.IDLE_UTILISATION_PERCENT if percent is None else percent
    since = now - timedelta(hours=hours)
    tasks = Task.objects.filter(status=Status.RUNNING, started_at__lte=since)
    if task_ids is not None:
        tasks = tasks.filter(pk__in=list(task_ids))
    rows = (
        GpuUtilisationSample.objects.filter(at__gte=since, instance__task__in=tasks)
        .order_by().values("instance__task_id").annotate(highest=Max("utilisation"))
    )
    return {row["instance__task_id"]: row["highest"] for row in rows if row["highest"] < percent}
