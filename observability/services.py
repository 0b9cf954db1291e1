"""What observability writes: the minute's allocation samples, their hourly roll-up and compaction, worker heartbeats."""

from datetime import UTC, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from clusters.models import VirtualCluster
from scheduler.selectors import CLUSTER_FIELDS, cluster_states
from tasks.models import InstanceStatus, TaskInstance
from tasks.states import Status

from . import gpus
from .models import (
    HOUR, MINUTE, AllocationSample, ClusterSample, GpuUtilisationSample, ProcessKind, WorkerHeartbeat,
)
from .selectors import rolled_up_until


def _minute(now):
    return (now or timezone.now()).replace(second=0, microsecond=0)


def allocation_sample(*, now=None):
    """Sample the minute now ending: per VC its GPUs and queue, per VC × project × owner the GPUs held.

    A second sample of the same minute (beat delivered twice) is dropped by the unique constraints.
    Returns the number of rows written (cluster rows, allocation rows).
    """
    at = _minute(now)
    states = cluster_states(VirtualCluster.objects.order_by("pk").values(*CLUSTER_FIELDS))
    held = (
        TaskInstance.objects.holding().order_by()
        .values_list("task__virtual_cluster_id", "task__project_id", "task__owner_id")
        .annotate(gpus=Sum("gpu_count"))
    )
    allocations = [
        AllocationSample(
            virtual_cluster_id=vc_id, project_id=project_id, owner_id=owner_id, at=at, span_seconds=MINUTE,
            gpu_seconds=gpus * MINUTE,
        )
        for vc_id, project_id, owner_id, gpus in held
    ]
    allocated = {}
    for sample in allocations:
        allocated[sample.virtual_cluster_id] = allocated.get(sample.virtual_cluster_id, 0) + sample.gpu_seconds
    clusters = [
        ClusterSample(
            virtual_cluster_id=state.id, at=at, span_seconds=MINUTE,
            total_gpu_seconds=state.total_skus * state.sku_gpus * MINUTE,
            allocated_gpu_seconds=allocated.get(state.id, 0),
            queued_task_seconds=len(state.queue) * MINUTE,
        )
        for state in states.values()
    ]
    with transaction.atomic():
        ClusterSample.objects.bulk_create(clusters, ignore_conflicts=True)
        AllocationSample.objects.bulk_create(allocations, ignore_conflicts=True)
    return len(clusters), len(allocations)


_ROLLED_UP = (
    (ClusterSample, ("virtual_cluster_id",), ("total_gpu_seconds", "allocated_gpu_seconds", "queued_task_seconds")),
    (AllocationSample, ("virtual_cluster_id", "project_id", "owner_id"), ("gpu_seconds",)),
)
# An hour is rolled up once this long has passed after it: a sample of its last minute may still be committing.
SETTLE = timedelta(minutes=5)


def compaction_cutoff(now=None):
    """Minute samples before this hour are deleted (their hours rolled up): a week of minutes is kept."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.SAMPLES_MINUTE_DAYS)
    return cutoff.replace(minute=0, second=0, microsecond=0)


@transaction.atomic
def samples_compact(*, now=None):
    """Roll every settled hour's minute samples up into hourly rows, then delete the minutes older than a week.

    The hourly rows are sums of GPU-seconds, so they say exactly what the minutes said; rolling up an hour
    again writes the same sums. Returns (hourly rows written, minute rows deleted).
    """
    now = now or timezone.now()
    settled = (now - SETTLE).replace(minute=0, second=0, microsecond=0)
    start = rolled_up_until()
    written = 0
    for model, keys, sums in _ROLLED_UP:
        minutes = model.objects.filter(span_seconds=MINUTE, at__lt=settled)
        if start is not None:
            minutes = minutes.filter(at__gte=start)
        hours = (
            minutes.order_by().annotate(hour=TruncHour("at", tzinfo=UTC))
            .values(*keys, "hour").annotate(**{f"sum_{name}": Sum(name) for name in sums})
        )
        rows = [
            model(
                at=row["hour"], span_seconds=HOUR,
                **{key: row[key] for key in keys}, **{name: row[f"sum_{name}"] for name in sums},
            )
            for row in hours
        ]
        model.objects.bulk_create(
            rows, batch_size=1000, update_conflicts=True,
            unique_fields=[key.removesuffix("_id") for key in keys] + ["span_seconds", "at"], update_fields=list(sums),
        )
        written += len(rows)
    cutoff = min(compaction_cutoff(now), rolled_up_until() or settled, settled)
    deleted = sum(model.objects.filter(span_seconds=MINUTE, at__lt=cutoff).delete()[0] for model, _k, _s in _ROLLED_UP)
    GpuUtilisationSample.objects.filter(at__lt=compaction_cutoff(now)).delete()  # kept as long as the minutes
    return written, deleted


def gpu_utilisation_sample(*, now=None, readings=None):
    """Sample how busy each ready instance of a running task is: the mean of its GPUs' readings.

    ``readings``: ``gpus.read_utilisation()`` when not given; nothing is written when nothing can be read.
    Returns the number of instances sampled.
    """
    readings = gpus.read_utilisation() if readings is None else readings
    if not readings:
        return 0
    local = all(host is None for host, _index in readings)
    at = _minute(now)
    samples = []
    instances = TaskInstance.objects.filter(task__status=Status.RUNNING, status=InstanceStatus.READY)
    for instance in instances.only("pk", "node_name", "gpu_indices"):
        seen = [readings.get((None if local else instance.node_name, index)) for index in instance.gpu_indices]
        seen = [reading for reading in seen if reading is not None]
        if not seen:
            continue
        memory = [used for _util, used in seen if used is not None]
        samples.append(GpuUtilisationSample(
            instance_id=instance.pk, at=at, utilisation=sum(util for util, _used in seen) / len(seen),
            memory_used_mib=sum(memory) if memory else None,
        ))
    GpuUtilisationSample.objects.bulk_create(samples, ignore_conflicts=True)
    return len(samples)


def heartbeat(*, name, kind=ProcessKind.WORKER, queues=(), now=None):
    """The worker (or beat) ``name`` is alive now, consuming ``queues``."""
    WorkerHeartbeat.objects.update_or_create(
        worker=name, defaults={"kind": kind, "queues": ",".join(sorted(queues)), "seen_at": now or timezone.now()},
    )
