"""The deployment task: its configuration, its state, its instances and its timeline."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from deploy_portal.messages import SentenceField

from clusters.models import Node, PriorityClass, Project, Storage, VirtualCluster
from clusters.permissions import MANAGER_PERMISSIONS

from .querysets import TaskInstanceQuerySet, TaskQuerySet, TaskRunQuerySet
from .states import HOLDING, Status


class TaskType(models.TextChoices):
    INFERENCE = "inference", _("Model deployment")


class Task(models.Model):
    name = models.CharField(_("name"), max_length=100)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="tasks", verbose_name=_("project"))
    task_type = models.CharField(_("task type"), max_length=20, choices=TaskType.choices, default=TaskType.INFERENCE)
    image = models.CharField(_("image"), max_length=500)
    virtual_cluster = models.ForeignKey(
        VirtualCluster, on_delete=models.PROTECT, related_name="tasks", verbose_name=_("virtual cluster")
    )
    sku_count = models.PositiveIntegerField(_("SKU count"), default=1)
    replicas = models.PositiveIntegerField(_("replicas"), default=1)
    expose_port = models.BooleanField(_("expose port"), default=True)
    container_port = models.PositiveIntegerField(_("container port"), null=True, blank=True)
    external_port = models.PositiveIntegerField(
        _("external port"), null=True, blank=True, help_text=_("Leave blank to let the system pick a free one.")
    )
    priority_class = models.ForeignKey(
        PriorityClass, on_delete=models.PROTECT, null=True, blank=True, related_name="tasks",
        verbose_name=_("priority class"), help_text=_("Blank: the default priority (0)."),
    )
    # The class's value when the task joined its queue (as Kubernetes resolves a pod's priority at admission).
    priority = models.IntegerField(_("priority"), default=0, editable=False)
    description = models.TextField(_("description"), blank=True)
    public_endpoint = models.BooleanField(
        _("public endpoint"), default=False,
        help_text=_("The gateway answers anyone who can reach it, without an API key. Only the owner sets it."),
    )
    env = models.JSONField(_("environment variables"), default=list, blank=True)
    command = models.JSONField(_("command"), default=list, blank=True)
    args = models.JSONField(_("arguments"), default=list, blank=True)

    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.NOT_DEPLOYED)
    # Why it failed, was stopped or killed: said again in each reader's language (deploy_portal.messages).
    status_message = SentenceField(_("status message"))
    pinned = models.BooleanField(_("pinned"), default=False)
    queued_at = models.DateTimeField(_("queued at"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    # The port the endpoint answers on while the task holds GPUs (the chosen or the picked one).
    endpoint_port = models.PositiveIntegerField(_("endpoint port"), null=True, blank=True)
    # The run its started_at, queued_at, endpoint and instances are of: the latest start's.
    current_run = models.ForeignKey(
        "TaskRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("current run"),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tasks", verbose_name=_("owner")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        permissions = list(MANAGER_PERMISSIONS)
        indexes = [
            # The queues in their order, for the VCs of a pass (``= ANY`` on the first column keeps the order):
            # the pass reads them without a sort.
            models.Index(
                fields=["virtual_cluster", "-pinned", "-priority", "queued_at", "id"], name="task_queue_idx",
                condition=models.Q(status="queued"),
            ),
            models.Index(fields=["status", "id"], name="task_status_idx"),
            # The held-SKU aggregate (every queue view and pass) joins instances to the holding tasks: read from this
            # index, a few hundred entries, instead of the primary key's scan of every task filtered by status.
            models.Index(
                fields=["id", "current_run"], name="task_holding_idx",
                condition=models.Q(status__in=sorted(HOLDING)),
            ),
            # The task lists' default order: their first page is read from the index, not a sort of every task.
            models.Index(fields=["-created_at", "-id"], name="task_list_order_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["virtual_cluster"], condition=models.Q(pinned=True), name="one_pinned_task_per_vc"
            ),
            # Set only while the task holds GPUs: no two holding tasks answer on one node port.
            models.UniqueConstraint(
                fields=["endpoint_port"], condition=models.Q(endpoint_port__isnull=False), name="unique_endpoint_port"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def endpoint(self):
        """The HTTP endpoint: shown and usable only while the task is running."""
        if self.status != Status.RUNNING or not self.expose_port or not self.endpoint_port:
            return None
        return f"http://{self.virtual_cluster.endpoint_host}:{self.endpoint_port}"

    @property
    def shm_size(self):
        for item in self.env:
            if item.get("name") == "SHM_SIZE":
                return item.get("value")
        return None


class TaskMount(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="mounts")
    storage = models.ForeignKey(Storage, on_delete=models.PROTECT, related_name="mounts", verbose_name=_("storage"))
    mount_path = models.CharField(_("mount path"), max_length=500)

    class Meta:
        ordering = ["id"]
        verbose_name = _("storage mount")
        verbose_name_plural = _("storage mounts")
        constraints = [models.UniqueConstraint(fields=["task", "mount_path"], name="unique_mount_path_per_task")]

    def __str__(self):
        return f"{self.storage} → {self.mount_path}"


class RunOutcome(models.TextChoices):
    STOPPED = "stopped", _("Stopped")
    FAILED = "failed", _("Failed")
    KILLED = "killed", _("Killed")


class TaskRun(models.Model):
    """One start of a task: from the queue (or straight to a machine) to the end, with its own instances and logs.

    Everything the runtime reports is bound to a run's id: a report about a run that is no longer the task's
    current one is ignored. Instances belong to their run and outlive it, with their archived logs.
    """

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveIntegerField(_("number"))
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("started by"),
    )
    queued_at = models.DateTimeField(_("queued at"), null=True, blank=True)
    placed_at = models.DateTimeField(_("placed at"), null=True, blank=True)
    running_at = models.DateTimeField(_("running at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=20, choices=RunOutcome.choices, blank=True)
    reason = SentenceField(_("reason"))
    killed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("killed by"),
    )
    killed_for = models.ForeignKey(
        Task, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("killed for"),
    )
    # The configuration it ran with: image, SKUs, replicas, env names, mounts, command and args.
    config = models.JSONField(_("configuration"), default=dict, blank=True)
    # Why its logs could not be archived, if they could not (the teardown went on).
    archive_error = models.TextField(_("log archive error"), blank=True)
    # Its endpoint port, and when its teardown finished: the port is handed out again only a grace time after it.
    endpoint_port = models.PositiveIntegerField(_("endpoint port"), null=True, blank=True)
    torn_down_at = models.DateTimeField(_("torn down at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = TaskRunQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]
        verbose_name = _("run")
        verbose_name_plural = _("runs")
        constraints = [models.UniqueConstraint(fields=["task", "number"], name="unique_run_number")]

    def __str__(self):
        return f"{self.task.name} #{self.number}"

    @property
    def ended(self):
        return self.ended_at is not None

    @property
    def duration(self):
        """From placement to the end (or now), None while it never left the queue."""
        if self.placed_at is None:
            return None
        return (self.ended_at or timezone.now()) - self.placed_at


class InstanceStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    STARTING = "starting", _("Starting")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")
    TERMINATED = "terminated", _("Terminated")


class TaskInstance(models.Model):
    """One running copy of a task, on the machine the scheduler chose for it."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="instances")
    run = models.ForeignKey(TaskRun, on_delete=models.CASCADE, related_name="instances", verbose_name=_("run"))
    index = models.PositiveIntegerField(_("index"))
    # A machine may be deleted once nothing holds it: the instance keeps its name.
    node = models.ForeignKey(
        Node, on_delete=models.SET_NULL, null=True, blank=True, related_name="instances", verbose_name=_("machine"),
    )
    node_name = models.CharField(_("node name"), max_length=253)
    gpu_type = models.CharField(_("GPU type"), max_length=100)
    sku_count = models.PositiveIntegerField(_("SKU count"))
    gpu_count = models.PositiveIntegerField(_("GPU count"))
    gpu_indices = models.JSONField(_("GPU indices"), default=list, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=InstanceStatus.choices, default=InstanceStatus.PENDING
    )
    restarts = models.PositiveIntegerField(_("restarts"), default=0)
    handle = models.CharField(_("runtime handle"), max_length=255, blank=True)
    # The port it listens on, when the runtime picked one of its own (the local runtime's instances 1…).
    port = models.PositiveIntegerField(_("port"), null=True, blank=True)
    # Where the gateway reaches it (host:port), as the runtime last saw it: 127.0.0.1:<port>, a pod's IP.
    address = models.CharField(_("address"), max_length=300, blank=True)
    message = SentenceField(_("message"))
    log_archive = models.TextField(_("archived log"), blank=True)
    log_archived = models.BooleanField(_("log archived"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    ready_at = models.DateTimeField(_("ready at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = TaskInstanceQuerySet.as_manager()

    class Meta:
        ordering = ["task", "-run", "index"]
        verbose_name = _("instance")
        verbose_name_plural = _("instances")
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="unique_instance_index_per_run")]
        indexes = [models.Index(fields=["node", "task"], name="instance_node_idx")]

    def __str__(self):
        return f"{self.task.name}-{self.index}"


class TaskEvent(models.Model):
    """One line of a task's timeline: a transition, or an operation that did not change the state."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(_("from"), max_length=20, choices=Status.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=20, choices=Status.choices, blank=True)
    operation = models.CharField(_("operation"), max_length=40)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("actor"),
    )
    message = SentenceField(_("message"))
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("event")
        verbose_name_plural = _("events")

    def __str__(self):
        return f"{self.task_id}: {self.from_status} → {self.to_status} ({self.operation})"
