"""What is kept to see the GPUs later: allocation samples, worker heartbeats, notification settings and deliveries.

Samples hold GPU-seconds, not GPU counts: a minute sample of 6 allocated GPUs holds 360, and an hourly row
rolled up from sixty of them holds their sum, so GPU-hours and averages are exact sums at every resolution.
Every complete hour has its hourly rows (``services.samples_compact``); its minute rows are kept a week
beside them for the fine plots, then deleted. Long reads use the hourly rows and the minutes after them.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from clusters.models import Project, VirtualCluster

MINUTE, HOUR = 60, 3600


class ClusterSample(models.Model):
    """One VC over ``span_seconds`` from ``at``: GPUs it offered, GPUs held, tasks queued (each × seconds)."""

    virtual_cluster = models.ForeignKey(VirtualCluster, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    span_seconds = models.PositiveIntegerField(default=MINUTE)
    total_gpu_seconds = models.BigIntegerField(default=0)
    allocated_gpu_seconds = models.BigIntegerField(default=0)
    queued_task_seconds = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["virtual_cluster", "at"]
        constraints = [
            models.UniqueConstraint(fields=["virtual_cluster", "span_seconds", "at"], name="one_cluster_sample_per_span")
        ]


class AllocationSample(models.Model):
    """GPU-seconds one owner's tasks of one project held on one VC over ``span_seconds`` from ``at``."""

    virtual_cluster = models.ForeignKey(VirtualCluster, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    span_seconds = models.PositiveIntegerField(default=MINUTE)
    gpu_seconds = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["at"]
        constraints = [
            models.UniqueConstraint(
                fields=["virtual_cluster", "project", "owner", "span_seconds", "at"], name="one_allocation_sample_per_span"
            )
        ]
        indexes = [models.Index(fields=["span_seconds", "at"], name="allocation_sample_span_at_idx")]


class WorkerHeartbeat(models.Model):
    """A Celery worker said it was alive at ``seen_at`` (a beat task any worker runs)."""

    worker = models.CharField(max_length=255, unique=True)
    seen_at = models.DateTimeField()

    class Meta:
        ordering = ["worker"]
