"""The utilisation pages: a VC's allocated vs total GPUs, queue length and waits; GPU-hours with CSV export.

Everything is read from the allocation history (``observability.selectors``); the plots are drawn in the
browser by uPlot (``static/vendor``) from the page's JSON, their words and dates in the page's language.
"""

import csv

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from clusters.models import Project, VirtualCluster
from clusters.permissions import is_manager
from observability import selectors
from tasks.models import Task
from tasks.states import Status

from .charts import histogram
from .forms import UsagePeriodForm
from .live import login_required, visible_or_404


@require_GET
@login_required
def utilisation_index(request):
    """The utilisation page of the first VC the user may see."""
    vc = VirtualCluster.objects.visible_to(request.user).order_by("name").first()
    if vc is None:
        raise Http404(_("No virtual cluster is granted to you."))
    return redirect("portal:utilisation", pk=vc.pk)


@require_GET
@login_required
def utilisation(request, pk):
    vc = visible_or_404(request, VirtualCluster.objects, pk)
    range_name = request.GET.get("range") if request.GET.get("range") in selectors.RANGES else "24h"
    now = timezone.now()
    points = selectors.utilisation(virtual_cluster_id=vc.pk, until=now, range_name=range_name)
    waits = selectors.wait_seconds(virtual_cluster_id=vc.pk, until=now, range_name=range_name)
    bins = histogram([seconds / 60 for seconds in waits], 12)
    plot = {
        "at": [int(point.at.timestamp()) for point in points],
        "total": [round(point.total_gpus, 2) for point in points],
        "allocated": [round(point.allocated_gpus, 2) for point in points],
        "queued": [round(point.queued_tasks, 2) for point in points],
        "wait_low": [round(low, 1) for low, _high, _n in bins],
        "wait_high": [round(high, 1) for _low, high, _n in bins],
        "wait_count": [n for _low, _high, n in bins],
    }
    words = {
        "total": _("Total GPUs"), "allocated": _("Allocated GPUs"), "queued": _("Queued tasks"),
        "tasks": _("Number of tasks"), "minutes": _("Minutes waited"), "time": _("Time"),
    }
    context = {
        "vc": vc, "range_name": range_name, "words": words, "ranges": list(selectors.RANGES), "plot": plot,
        "clusters": VirtualCluster.objects.visible_to(request.user).order_by("name"),
        "wait_count": len(waits), "sampled": bool(points),
        "peak": max((point.allocated_gpus for point in points), default=0),
        "average": sum(point.allocated_gpus for point in points) / len(points) if points else 0,
    }
    return render(request, "portal/utilisation.html", context)


def _period(form):
    """[since, until) in the site's time zone, whole days, from the form (or this month so far)."""
    today = timezone.localdate()
    since, until = today.replace(day=1), today
    if form.is_bound and form.is_valid():
        since, until = form.cleaned_data["since"], form.cleaned_data["until"]
    return since, until, *selectors.day_period(since, until)


@require_GET
@login_required
def gpu_hours(request):
    """GPU-hours per project and per user over a period (managers: all; others: their projects); ``?format=csv``."""
    form = UsagePeriodForm(request.GET if "since" in request.GET or "until" in request.GET else None)
    since, until, start, end = _period(form)
    project_ids = None if is_manager(request.user) else list(Project.objects.of_member(request.user).values_list("pk", flat=True))
    by_project = selectors.gpu_hours(since=start, until=end, by="project", project_ids=project_ids)
    by_owner = selectors.gpu_hours(since=start, until=end, by="owner", project_ids=project_ids)
    if request.GET.get("format") == "csv":
        return _csv(by_project, by_owner, since, until)
    if not form.is_bound:
        form = UsagePeriodForm(initial={"since": since, "until": until})
    context = {
        "form": form, "by_project": by_project, "by_owner": by_owner, "since": since, "until": until,
        "total": sum(row["gpu_hours"] for row in by_project),
    }
    return render(request, "portal/gpu_hours.html", context)


def _csv(by_project, by_owner, since, until):
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="gpu-hours-{since}-{until}.csv"'
    response.write("\ufeff")  # Excel opens UTF-8 (Chinese names) only with the byte-order mark
    writer = csv.writer(response)
    writer.writerow([_("Kind"), _("Name"), _("Virtual cluster"), _("GPU-hours"), _("From"), _("To (included)")])
    for kind, rows in ((_("Project"), by_project), (_("User"), by_owner)):
        for row in rows:
            writer.writerow([kind, row["name"], row["virtual_cluster"], f"{row['gpu_hours']:.3f}", since, until])
    return response


def gpu_utilisation_context(task, instances):
    """For a task's instances tab: each instance's latest GPU reading, and whether the task is idle."""
    latest = selectors.latest_gpu_utilisation(instance.pk for instance in instances)
    for instance in instances:
        instance.gpu_reading = latest.get(instance.pk)
    idle = task.status == Status.RUNNING and task.pk in selectors.idle_tasks(now=timezone.now(), task_ids=[task.pk])
    return {"gpu_readable": bool(latest), "idle_hours": settings.IDLE_HOURS if idle else None}


@require_GET
@login_required
def idle_deployments(request):
    """Managers: the running tasks whose GPUs have been idle for ``IDLE_HOURS``, so the GPUs can be reclaimed."""
    if not is_manager(request.user):
        raise PermissionDenied
    idle = selectors.idle_tasks(now=timezone.now())
    tasks = Task.objects.filter(pk__in=list(idle)).select_related("owner", "project", "virtual_cluster").order_by("started_at")
    rows = [{"task": task, "highest": idle[task.pk]} for task in tasks]
    context = {"rows": rows, "hours": settings.IDLE_HOURS, "percent": settings.IDLE_UTILISATION_PERCENT}
    return render(request, "portal/idle_deployments.html", context)
