"""An evaluation run: a load test against a running task's endpoint, with its parameters and results."""

from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from tasks.models import Task

from .querysets import EvaluationQuerySet

MAX_REQUESTS = 5000
MAX_CONCURRENCY = 256
MAX_TOKENS = 8192
MAX_TIMEOUT_SECONDS = 600
# Slack on top of a run's longest possible duration before a run nobody finished counts as abandoned.
ABANDON_GRACE = timedelta(minutes=2)
QUEUE_WAIT = timedelta(minutes=30)  # how long a run may wait for an evaluations worker before it counts as lost
# A running evaluation's worker writes ``heartbeat_at`` at least this often; one silent for HEARTBEAT_STALE has
# lost its worker (beat's safety net runs every minute: such a run ends within one or two).
HEARTBEAT_EVERY = timedelta(seconds=10)
HEARTBEAT_STALE = timedelta(seconds=60)
NEVER_SENT = timedelta(seconds=60)  # a pending run whose message was never handed to the broker after this is lost


class EvaluationStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


ACTIVE_STATUSES = (EvaluationStatus.PENDING, EvaluationStatus.RUNNING)


class FailureReason(models.TextChoices):
    """Why a run failed; stored as a code so that each reader gets it in their own language."""

    TASK_NOT_RUNNING = "task_not_running", _("The task is no longer running.")
    TASK_STOPPED = "task_stopped", _(
        "The task stopped running during the evaluation; these are the figures measured until then."
    )
    NO_MODEL = "no_model", _("Could not list the endpoint's models.")
    NO_SUCCESS = "no_success", _("No request succeeded.")
    ABANDONED = "abandoned", _("Abandoned: the worker running it went away.")


class EndpointKind(models.TextChoices):
    COMPLETIONS = "completions", _("Completions (/v1/completions)")
    CHAT = "chat", _("Chat (/v1/chat/completions)")


class Evaluation(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="evaluations", verbose_name=_("task"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("started by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent to a worker at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    # Parameters
    endpoint_kind = models.CharField(
        _("endpoint"), max_length=20, choices=EndpointKind.choices, default=EndpointKind.COMPLETIONS
    )
    model_name = models.CharField(
        _("model"), max_length=200, blank=True, help_text=_("Leave blank to use the first model the endpoint lists.")
    )
    prompt = models.TextField(_("prompt"), blank=True, help_text=_("Leave blank to use a small built-in prompt set."))
    max_tokens = models.PositiveIntegerField(
        _("max tokens"), default=128, validators=[MinValueValidator(1), MaxValueValidator(MAX_TOKENS)]
    )
    request_count = models.PositiveIntegerField(
        _("requests"), default=100, validators=[MinValueValidator(1), MaxValueValidator(MAX_REQUESTS)]
    )
    concurrency = models.PositiveIntegerField(
        _("concurrency"), default=8, validators=[MinValueValidator(1), MaxValueValidator(MAX_CONCURRENCY)]
    )
    request_rate = models.FloatField(
        _("request rate (requests/s)"), null=True, blank=True, validators=[MinValueValidator(0.01)],
        help_text=_("Leave blank to send as fast as the concurrency allows."),
    )
    timeout_seconds = models.FloatField(
        _("timeout per request (s)"), default=60.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(MAX_TIMEOUT_SECONDS)],
    )

    # What was evaluated: the endpoint and the task's configuration at the time, for comparisons.
    endpoint = models.CharField(_("endpoint URL"), max_length=500, blank=True)
    task_config = models.JSONField(_("task configuration"), default=dict, blank=True)

    status = models.CharField(
        _("status"), max_length=20, choices=EvaluationStatus.choices, default=EvaluationStatus.PENDING
    )
    failure_reason = models.CharField(_("failure reason"), max_length=30, choices=FailureReason.choices, blank=True)
    failure_detail = models.TextField(_("failure detail"), blank=True)  # the endpoint's own words, untranslated
    requests_done = models.PositiveIntegerField(_("requests done"), default=0)
    results = models.JSONField(_("results"), default=dict, blank=True)

    objects = EvaluationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("evaluation")
        verbose_name_plural = _("evaluations")
        constraints = [
            models.UniqueConstraint(
                fields=["task"],
                condition=models.Q(status__in=["pending", "running"]),
                name="one_active_evaluation_per_task",
            ),
        ]

    def __str__(self):
        return f"{self.task.name} #{self.pk}"

    @property
    def status_message(self) -> str:
        """Why the run failed, in the active language, with the endpoint's error when there is one."""
        if not self.failure_reason:
            return ""
        label = str(self.get_failure_reason_display())
        return f"{label} {self.failure_detail}" if self.failure_detail else label

    @property
    def progress_key(self) -> str:
        """Changes whenever what the results page shows of a run under way changes."""
        return f"{self.status}-{self.requests_done}"

    @property
    def is_active(self):
        return self.status in ACTIVE_STATUSES

    def longest_duration(self) -> timedelta:
        """The longest a run with these parameters can take: every request waits for its turn and times out."""
        waves = -(-self.request_count // self.concurrency)
        arrivals = self.request_count / self.request_rate if self.request_rate else 0.0
        return timedelta(seconds=arrivals + waves * self.timeout_seconds)

    def is_abandoned(self, now) -> bool:
        """An active run whose worker is gone (or whose message never reached one).

        Running: its worker has not written a heartbeat for HEARTBEAT_STALE, or it ran past its longest possible
        duration plus ABANDON_GRACE anyway. Pending: its message was never handed to the broker within
        NEVER_SENT (the web process died between commit and send), or it was but no worker took it within
        QUEUE_WAIT plus its longest duration (it may be waiting its turn behind other evaluations until then).
        """
        if not self.is_active:
            return False
        if self.status == EvaluationStatus.RUNNING:
            started = self.started_at or self.created_at  # a row made running by hand has no start
            beat = self.heartbeat_at or started
            return now > beat + HEARTBEAT_STALE or now > started + self.longest_duration() + ABANDON_GRACE
        if self.sent_at is None:
            return now > self.created_at + NEVER_SENT
        return now > self.sent_at + QUEUE_WAIT + self.longest_duration() + ABANDON_GRACE
