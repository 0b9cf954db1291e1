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
from deploy_portal.messages import SentenceField

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
        # The last rolled-up hour (every long read asks) is read from this index alone.
        indexes = [models.Index(fields=["span_seconds", "at"], name="cluster_sample_span_at_idx")]


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


class ProcessKind(models.TextChoices):
    WORKER = "worker", _("Worker")
    BEAT = "beat", _("Beat")


class WorkerHeartbeat(models.Model):
    """A Celery worker (or beat) said it was alive at ``seen_at``: each writes its own row every few seconds
    (``observability.heartbeats``), so one that died ages while the others stay fresh."""

    worker = models.CharField(max_length=255, unique=True)  # Celery's node name (portal@host), or beat@host
    kind = models.CharField(max_length=10, choices=ProcessKind.choices, default=ProcessKind.WORKER)
    queues = models.CharField(max_length=1000, blank=True)  # the queues a worker consumes, comma-separated
    seen_at = models.DateTimeField()

    class Meta:
        ordering = ["worker"]


class NotificationEvent(models.TextChoices):
    """What a user may be told about their tasks."""

    RUNNING = "running", _("Started running")
    FAILED = "failed", _("Failed")
    KILLED = "killed", _("Killed by a force start")
    QUEUED_LONG = "queued_long", _("Queued longer than the chosen minutes")
    STOPPED_BY_OTHER = "stopped_by_other", _("Stopped by someone else")
    EVALUATION_FINISHED = "evaluation_finished", _("Evaluation finished")


class WebhookKind(models.TextChoices):
    FEISHU = "feishu", _("Feishu bot (card)")
    DINGTALK = "dingtalk", _("DingTalk bot (message)")
    JSON = "json", _("JSON to any URL (signed)")


class Webhook(models.Model):
    """Where notifications are posted: a user's own, or a project's (set by managers: every event of its tasks).

    Disabled after ``WEBHOOK_DISABLE_AFTER`` deliveries in a row failed for good; its owner is mailed.
    """

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=20, choices=WebhookKind.choices, default=WebhookKind.JSON)
    url = models.URLField(_("URL"), max_length=1000)
    secret = models.CharField(
        _("signing secret"), max_length=200, blank=True,
        help_text=_("Feishu and DingTalk: the bot's signing secret; JSON: the HMAC-SHA256 key of the signature header."),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks", verbose_name=_("owner")
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, null=True, blank=True, related_name="webhooks", verbose_name=_("project"),
        help_text=_("A project's webhook is told every chosen event of the project's tasks."),
    )
    events = models.JSONField(_("events"), default=list, blank=True, help_text=_("For a project's webhook."))
    enabled = models.BooleanField(_("enabled"), default=True)
    consecutive_failures = models.PositiveIntegerField(_("failures in a row"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")

    def __str__(self):
        return self.name


class NotificationPreference(models.Model):
    """One user's choice for one event: by e-mail, to one of their webhooks, or both."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences")
    event = models.CharField(_("event"), max_length=30, choices=NotificationEvent.choices)
    email = models.BooleanField(_("e-mail"), default=False)
    webhook = models.ForeignKey(
        Webhook, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("webhook")
    )
    queued_minutes = models.PositiveIntegerField(_("after minutes queued"), default=30)

    class Meta:
        ordering = ["user", "event"]
        constraints = [models.UniqueConstraint(fields=["user", "event"], name="one_preference_per_user_event")]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class Delivery(models.Model):
    """One notification to one e-mail address or webhook: what was said, and whether it arrived (and why not)."""

    key = models.CharField(max_length=200, unique=True)  # the event × recipient: a second notice of it is not sent
    event = models.CharField(_("event"), max_length=30, choices=NotificationEvent.choices)
    task = models.ForeignKey("tasks.Task", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    email = models.EmailField(_("e-mail"), blank=True)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries")
    title = SentenceField(_("title"))
    text = SentenceField(_("text"))
    link = models.CharField(_("link"), max_length=1000, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notification delivery")
        verbose_name_plural = _("notification deliveries")


class GpuUtilisationSample(models.Model):
    """How busy one instance's GPUs were at ``at`` (the mean over its GPUs), as nvidia-smi or DCGM said."""

    instance = models.ForeignKey("tasks.TaskInstance", on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    utilisation = models.FloatField()  # percent, 0–100
    memory_used_mib = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["instance", "at"]
        constraints = [models.UniqueConstraint(fields=["instance", "at"], name="one_gpu_sample_per_instance_minute")]
