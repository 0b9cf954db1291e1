"""The GPU world a manager sets up: projects, virtual clusters and their machines, storages."""

import re

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .querysets import (
    NodeQuerySet,
    PriorityClassQuerySet,
    ProjectQuerySet,
    ProjectQuotaQuerySet,
    StorageQuerySet,
    VirtualClusterQuerySet,
)


class Project(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="projects", blank=True, verbose_name=_("members")
    )

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("project")
        verbose_name_plural = _("projects")

    def __str__(self):
        return self.name


class QueuePolicy(models.TextChoices):
    STRICT_FIFO = "strict_fifo", _("strict FIFO")
    BEST_EFFORT_FIFO = "best_effort_fifo", _("best-effort FIFO")
    FAIR_SHARE = "fair_share", _("fair share")


class VirtualCluster(models.Model):
    """A pool of machines of one GPU type; each machine offers a number of SKUs of one bundle."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    gpu_type = models.CharField(_("GPU type"), max_length=100)
    sku_gpus = models.PositiveIntegerField(_("GPUs per SKU"), default=1, validators=[MinValueValidator(1)])
    sku_cpus = models.PositiveIntegerField(_("CPU cores per SKU"), default=12, validators=[MinValueValidator(1)])
    sku_memory_gib = models.PositiveIntegerField(
        _("memory per SKU (GiB)"), default=120, validators=[MinValueValidator(1)]
    )
    queue_policy = models.CharField(
        _("queue policy"), max_length=20, choices=QueuePolicy.choices, default=QueuePolicy.STRICT_FIFO
    )
    reclaim = models.BooleanField(
        _("reclaim borrowed SKUs"), default=False,
        help_text=_(
            "When a project under its guaranteed quota has a task waiting, kill tasks running on SKUs other "
            "projects borrowed, to make room for it."
        ),
    )
    endpoint_host = models.CharField(
        _("endpoint host"), max_length=255, default="127.0.0.1",
        help_text=_("Host name or address at which the external ports of this cluster are reachable."),
    )
    run_as_non_root = models.BooleanField(
        _("run as non-root"), default=False,
        help_text=_(
            "Kubernetes refuses to start a container whose image runs as root (runAsNonRoot). "
            "Turn it on when every image used on this cluster has a non-root user."
        ),
    )
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="virtual_clusters", blank=True, verbose_name=_("granted users")
    )
    groups = models.ManyToManyField(
        Group, related_name="virtual_clusters", blank=True, verbose_name=_("granted groups")
    )

    objects = VirtualClusterQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("virtual cluster")
        verbose_name_plural = _("virtual clusters")

    def __str__(self):
        return self.name

    @property
    def sku_description(self):
        return _("%(gpus)s GPU + %(cpus)s CPU cores + %(memory)s GiB memory") % {
            "gpus": self.sku_gpus, "cpus": self.sku_cpus, "memory": self.sku_memory_gib,
        }


class ProjectQuota(models.Model):
    """What a project is guaranteed in a virtual cluster, and how much beyond it it may borrow while SKUs are idle."""

    virtual_cluster = models.ForeignKey(
        VirtualCluster, on_delete=models.CASCADE, related_name="quotas", verbose_name=_("virtual cluster")
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="quotas", verbose_name=_("project"))
    guaranteed_skus = models.PositiveIntegerField(_("guaranteed SKUs"))
    borrowing_limit = models.PositiveIntegerField(
        _("borrowing limit (SKUs)"), null=True, blank=True,
        help_text=_("SKUs it may use beyond its guarantee while others leave them idle; blank: no limit."),
    )

    objects = ProjectQuotaQuerySet.as_manager()

    class Meta:
        ordering = ["virtual_cluster", "project"]
        verbose_name = _("project quota")
        verbose_name_plural = _("project quotas")
        constraints = [
            models.UniqueConstraint(fields=["virtual_cluster", "project"], name="one_quota_per_project_and_vc")
        ]

    def __str__(self):
        return f"{self.project} @ {self.virtual_cluster}"


class PriorityClass(models.Model):
    """A priority a task may ask for: higher values go first in their queue (after the pinned task).

    Granted to users and groups; a class granted to nobody is open to everyone.
    """

    name = models.CharField(_("name"), max_length=50, unique=True)
    value = models.IntegerField(_("value"), help_text=_("Higher goes first; the default class is 0."))
    description = models.TextField(_("description"), blank=True)
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="priority_classes", blank=True, verbose_name=_("granted users")
    )
    groups = models.ManyToManyField(
        Group, related_name="priority_classes", blank=True, verbose_name=_("granted groups")
    )

    objects = PriorityClassQuerySet.as_manager()

    class Meta:
        ordering = ["-value", "name"]
        verbose_name = _("priority class")
        verbose_name_plural = _("priority classes")

    def __str__(self):
        return self.name


class Node(models.Model):
    """A machine of a virtual cluster. Its free SKUs are derived from the instances placed on it."""

    virtual_cluster = models.ForeignKey(
        VirtualCluster, on_delete=models.PROTECT, related_name="nodes", verbose_name=_("virtual cluster")
    )
    name = models.CharField(_("name"), max_length=253, unique=True)
    gpu_type = models.CharField(_("GPU type"), max_length=100)
    sku_capacity = models.PositiveIntegerField(_("SKU capacity"), validators=[MinValueValidator(1)])
    schedulable = models.BooleanField(_("schedulable"), default=True)

    objects = NodeQuerySet.as_manager()

    class Meta:
        ordering = ["virtual_cluster", "name"]
        verbose_name = _("machine")
        verbose_name_plural = _("machines")

    def __str__(self):
        return self.name


class StorageKind(models.TextChoices):
    NFS = "nfs", "NFS"
    PVC = "pvc", "PersistentVolumeClaim"
    HOST_PATH = "hostPath", "hostPath"


class Storage(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=StorageKind.choices)
    source = models.CharField(
        _("source"), max_length=500,
        help_text=_("nfs: server:/export/path; pvc: claim name; hostPath: absolute path on the machine."),
    )
    read_only = models.BooleanField(_("read-only"), default=False)
    projects = models.ManyToManyField(Project, related_name="storages", blank=True, verbose_name=_("granted projects"))
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="storages", blank=True, verbose_name=_("granted users")
    )

    objects = StorageQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("storage")
        verbose_name_plural = _("storages")

    def __str__(self):
        return self.name

    def clean(self):
        """A hostPath is an absolute path on the machine, an NFS source ``server:/absolute/path``."""
        source = (self.source or "").strip()
        if self.kind == StorageKind.HOST_PATH and not source.startswith("/"):
            raise ValidationError({"source": _("A hostPath source must be an absolute path, such as /data/models.")})
        if self.kind == StorageKind.NFS and not re.fullmatch(r"[^\s:/]+:/\S*", source):
            raise ValidationError(
                {"source": _("An NFS source is server:/absolute/path, such as nfs-01:/export/models.")}
            )
