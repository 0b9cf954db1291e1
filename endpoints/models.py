"""API keys for the gateway, and what it metered, per hour."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clusters.models import Project
from tasks.models import Task


class ApiKeyQuerySet(models.QuerySet):
    def usable(self, now=None):
        """Neither revoked nor expired."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class ApiKey(models.Model):
    """A key the gateway takes as ``Authorization: Bearer <key>``: its user's access, narrowed to a project or to
    tasks when scoped. Only its SHA-256 is kept (``endpoints.keys``); the key is shown once, when made."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys",
                             verbose_name=_("user"))
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    digest = models.CharField(_("digest"), max_length=64, unique=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True, related_name="+",
                                verbose_name=_("project"), help_text=_("Blank: every project of its user."))
    tasks = models.ManyToManyField(Task, blank=True, related_name="+", verbose_name=_("tasks"),
                                   help_text=_("None: every task of its project (or of its user)."))
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    rate_limit = models.PositiveIntegerField(_("requests per minute"), null=True, blank=True,
                                             help_text=_("Blank: no limit."))
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # Moves on every change that matters to the gateway (made, revoked, scope): its cache reloads the keys then.
    changed_at = models.DateTimeField(_("changed at"), auto_now=True, db_index=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self):
        return f"{self.name} (dpk_{self.prefix}_…)"

    @property
    def revoked(self):
        return self.revoked_at is not None

    @property
    def expired(self):
        return self.expires_at is not None and self.expires_at <= timezone.now()


class UsageHour(models.Model):
    """What the gateway answered for one task and key within one hour (key None: a public task called without
    one). Rows are added to, never rewritten; two gateways may each write a row for the same hour, so readers sum."""

    hour = models.DateTimeField(_("hour"))
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+", verbose_name=_("task"))
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", verbose_name=_("project"))
    key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="usage",
                            verbose_name=_("API key"))
    requests = models.PositiveIntegerField(_("requests"), default=0)
    errors = models.PositiveIntegerField(_("errors"), default=0)
    latency_ms_total = models.BigIntegerField(_("total latency (ms)"), default=0)
    latency_ms_max = models.PositiveIntegerField(_("longest latency (ms)"), default=0)
    prompt_tokens = models.BigIntegerField(_("prompt tokens"), default=0)
    completion_tokens = models.BigIntegerField(_("completion tokens"), default=0)

    class Meta:
        ordering = ["hour", "id"]
        verbose_name = _("hourly usage")
        verbose_name_plural = _("hourly usage")
        indexes = [models.Index(fields=["task", "hour"], name="usage_task_hour_idx"),
                   models.Index(fields=["project", "hour"], name="usage_project_hour_idx")]
