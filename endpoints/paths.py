"""The gateway's stable address of a task: ``<GATEWAY_URL>/<project>/<task>/`` — the task's name when it is the only
one of that name in its project (and holds no "/"), else its id. Either form is answered; the URL outlives runs."""

from urllib.parse import quote

from django.conf import settings
from django.db.models import Count

from tasks.models import Task


def shared_names(tasks):
    """``{(project_id, name)}`` of those of ``tasks`` whose name another task of their project also has: one query."""
    tasks = list(tasks)
    if not tasks:
        return set()
    rows = (
        Task.objects.filter(project_id__in={t.project_id for t in tasks}, name__in={t.name for t in tasks})
        .values("project_id", "name").annotate(n=Count("id")).filter(n__gt=1)
    )
    return {(row["project_id"], row["name"]) for row in rows}


def gateway_path(task, shared=frozenset()):
    by_name = "/" not in task.name and not task.name.isdigit() and (task.project_id, task.name) not in shared
    ref = task.name if by_name else str(task.pk)
    return f"/{quote(task.project.name, safe='')}/{quote(ref, safe='')}/"


def gateway_url(task, shared=None):
    """The task's gateway URL, or None when no gateway is configured (``GATEWAY_URL`` blank)."""
    if not settings.GATEWAY_URL:
        return None
    if shared is None:
        shared = shared_names([task])
    return settings.GATEWAY_URL.rstrip("/") + gateway_path(task, shared)
