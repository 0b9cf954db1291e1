"""What the gateway reads: the routing table (running tasks and their ready replicas), the usable keys, a task's
usage. The gateway holds the first two in memory and reads them again on a timer, never per request."""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Max, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from clusters.models import Project
from clusters.permissions import is_manager
from tasks.models import InstanceStatus, Task, TaskInstance
from tasks.states import Status

from .keys import KeyGrant
from .models import ApiKey, UsageHour


@dataclass(frozen=True)
class Route:
    task_id: int
    project_id: int
    project: str
    name: str
    public: bool
    upstreams: tuple  # "host:port" of the current run's ready instances, by index


def routes():
    """Every running task with its ready replicas, in two queries: ``{task_id: Route}``."""
    tasks = {
        task.pk: task
        for task in Task.objects.filter(status=Status.RUNNING).select_related("project")
        .only("pk", "name", "public_endpoint", "current_run_id", "project__name", "project_id")
    }
    ready = {}
    instances = (
        TaskInstance.objects.filter(task_id__in=list(tasks), status=InstanceStatus.READY).exclude(address="")
        .order_by("index").values_list("task_id", "run_id", "address")
    )
    for task_id, run_id, address in instances:
        if run_id == tasks[task_id].current_run_id:
            ready.setdefault(task_id, []).append(address)
    return {
        pk: Route(pk, task.project_id, task.project.name, task.name, task.public_endpoint, tuple(ready.get(pk, ())))
        for pk, task in tasks.items()
    }


def key_grants(now=None):
    """Every usable key as the gateway checks it: ``{digest: KeyGrant}``, in three queries."""
    now = now or timezone.now()
    keys = list(ApiKey.objects.usable(now).select_related("user").prefetch_related("tasks"))
    users = {key.user_id: key.user for key in keys}
    memberships = {}
    for user_id, project_id in Project.members.through.objects.filter(user_id__in=list(users)).values_list(
        "user_id", "project_id"
    ):
        memberships.setdefault(user_id, set()).add(project_id)
    managers = {pk for pk, user in users.items() if user.is_active and is_manager(user)}
    return {
        key.digest: KeyGrant(
            key_id=key.pk, user_id=key.user_id, manager=key.user_id in managers,
            projects=frozenset(memberships.get(key.user_id, ())), scope_project=key.project_id,
            scope_tasks=frozenset(task.pk for task in key.tasks.all()), expires_at=key.expires_at,
            rate_limit=key.rate_limit,
        )
        for key in keys
        if key.user.is_active
    }


def keys_changed_at():
    """When a key last changed (made, revoked, scoped), and how many there are: the gateway reloads on a change."""
    found = ApiKey.objects.aggregate(latest=Max("changed_at"))
    return found["latest"], ApiKey.objects.count()


def task_usage(task, *, hours=24, now=None):
    """The task's usage per hour over the last ``hours`` (every hour listed, zero where nothing was called)."""
    now = now or timezone.now()
    end = now.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours - 1)
    sums = {
        row["at"]: row
        for row in UsageHour.objects.filter(task=task, hour__gte=start).annotate(at=TruncHour("hour")).values("at")
        .annotate(requests=Sum("requests"), errors=Sum("errors"), latency=Sum("latency_ms_total"),
                  longest=Max("latency_ms_max"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
    }
    rows = []
    for step in range(hours):
        hour = start + timedelta(hours=step)
        row = sums.get(hour) or {}
        requests = row.get("requests") or 0
        rows.append({
            "hour": hour, "requests": requests, "errors": row.get("errors") or 0,
            "latency_ms_mean": round(row["latency"] / requests, 1) if requests else None,
            "latency_ms_max": row.get("longest"),
            "prompt_tokens": row.get("prompt") or 0, "completion_tokens": row.get("completion") or 0,
        })
    return rows


def task_lookup(project_name, ref):
    """The tasks a gateway path names: ``/<project>/<ref>/`` where ``ref`` is a task's id or its name in that
    project. A list (several tasks may share a name: the caller says so)."""
    tasks = Task.objects.filter(project__name=project_name).select_related("project", "virtual_cluster")
    if ref.isdigit():
        found = list(tasks.filter(pk=int(ref)))
        if found:
            return found
    return list(tasks.filter(name=ref).order_by("pk")[:10])


