"""Every change to API keys and to metered usage."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import Project
from tasks.models import Task
from tasks.validation import check_name

from .keys import key_make
from .models import ApiKey, UsageHour

NAME_MAX_LENGTH = 100


@transaction.atomic
def api_key_create(*, user, name, project=None, tasks=(), expires_at=None, rate_limit=None):
    """A new key of ``user``: ``(ApiKey, key)``; the key itself is returned this once and never kept.

    A scope must be the user's own: a project they are a member of, tasks they may see (all of one project
    when a project is given too). Raises ValidationError for what is not."""
    name = (name or "").strip()
    errors = {}
    if not name:
        errors["name"] = [_("A name is required, to tell your keys apart.")]
    elif len(name) > NAME_MAX_LENGTH:
        errors["name"] = [_("At most %(max)s characters.") % {"max": NAME_MAX_LENGTH}]
    elif check_name(name):
        errors["name"] = check_name(name)
    if project is not None and not Project.objects.of_member(user).filter(pk=project.pk).exists():
        errors["project"] = [_("You are not a member of this project.")]
    tasks = list(tasks)
    visible = set(Task.objects.visible_to(user).filter(pk__in=[t.pk for t in tasks]).values_list("pk", flat=True))
    if any(t.pk not in visible for t in tasks):
        errors["tasks"] = [_("A task of the scope does not exist or is not visible to you.")]
    elif project is not None and any(t.project_id != project.pk for t in tasks):
        errors["tasks"] = [_("The tasks of a key scoped to a project must be of that project.")]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = [_("The expiry must be in the future.")]
    if rate_limit is not None and not (isinstance(rate_limit, int) and 1 <= rate_limit <= 1_000_000):
        errors["rate_limit"] = [_("From 1 to 1000000 requests per minute, or blank for no limit.")]
    if errors:
        raise ValidationError(errors)
    key, prefix, digest = key_make()
    api_key = ApiKey.objects.create(
        user=user, name=name, prefix=prefix, digest=digest, project=project, expires_at=expires_at,
        rate_limit=rate_limit,
    )
    api_key.tasks.set(tasks)
    return api_key, key


def api_key_revoke(*, api_key, user):
    """Revoke one of ``user``'s keys (a manager may revoke anyone's); the gateway refuses it within its refresh."""
    if api_key.user_id != user.pk and not user.has_perm("endpoints.delete_apikey"):
        raise ValidationError(_("This key is not yours."))
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), changed_at=timezone.now()
    )


def usage_record(rows, *, used_keys=None):
    """Add the gateway's counts (``{(hour, task_id, project_id, key_id): {requests, errors, latency_ms_total,
    latency_ms_max, prompt_tokens, completion_tokens}}``) to the hourly rows, and the keys' last use.

    One UPDATE per row that exists, an INSERT for the first count of an hour; counts are added, never set, so
    gateways that write the same hour together lose nothing."""
    existing = set(Task.objects.filter(pk__in={task_id for _, task_id, _, _ in rows}).values_list("pk", flat=True))
    for (hour, task_id, project_id, key_id), counts in rows.items():
        if task_id not in existing:  # deleted meanwhile: its usage goes with it
            continue
        updated = UsageHour.objects.filter(hour=hour, task_id=task_id, key_id=key_id).order_by("pk")[:1]
        row = updated.values_list("pk", flat=True).first()
        if row is None:
            UsageHour.objects.create(hour=hour, task_id=task_id, project_id=project_id, key_id=key_id, **counts)
            continue
        UsageHour.objects.filter(pk=row).update(
            requests=F("requests") + counts["requests"], errors=F("errors") + counts["errors"],
            latency_ms_total=F("latency_ms_total") + counts["latency_ms_total"],
            latency_ms_max=Greatest(F("latency_ms_max"), counts["latency_ms_max"]),
            prompt_tokens=F("prompt_tokens") + counts["prompt_tokens"],
            completion_tokens=F("completion_tokens") + counts["completion_tokens"],
        )
    for key_id, used_at in (used_keys or {}).items():
        # last_used_at alone: changed_at stays, so a key's use does not reload every gateway's keys.
        ApiKey.objects.filter(pk=key_id).update(last_used_at=used_at)
