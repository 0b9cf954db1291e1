"""The live queue status under the navigation (SPEC's queue status of every VC the user may see), and the
queue page: each VC's whole order with positions, waiting times, reasons, estimates and the manager's controls."""

from datetime import timedelta

from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET

from clusters.models import QueuePolicy
from scheduler import selectors
from scheduler.estimates import wait_estimates
from tasks.access import allowed_actions
from tasks.models import Task
from tasks.states import Action

from .live import live_region, live_response, login_required


def _queue_region(request):
    return {
        "template": "portal/_queue.html", "context": {"clusters": selectors.queue_status(user=request.user)},
        "url": reverse("portal:queue"), "element_id": "queue-status",
    }


def queue_region(request):
    """SPEC's queue status for every VC the user may see (the sidebar under the navigation)."""
    return live_region(request, **_queue_region(request))[1]


@require_GET
@login_required
def queue_status(request):
    return live_response(request, **_queue_region(request))


# --- the queue page: every VC's whole order, with the manager's controls -------------------------------

QUEUE_ACTIONS = frozenset({Action.PIN, Action.UNPIN, Action.FORCE_START})


def _span(seconds, now):
    """"40 minutes" in the active language (a minute at least)."""
    return timesince(now - timedelta(seconds=max(seconds, 60)), now, depth=1)


def _about(seconds, now):
    """"about 40 minutes" in the active language."""
    return _("about %(time)s") % {"time": _span(seconds, now)}


def _queue_page_region(request):
    now = timezone.now()
    clusters = selectors.queue_status(user=request.user, limit=None)
    ids = [entry["id"] for vc in clusters for entry in vc["queue"]]
    # Details only of the tasks the reader may see; another project's entry stays as the queue says it.
    tasks = Task.objects.visible_to(request.user).filter(pk__in=ids).select_related("project", "owner")
    visible = {task.pk: task for task in tasks}
    estimates = wait_estimates({vc["id"]: {e["id"]: e["position"] for e in vc["queue"]} for vc in clusters}, now=now)
    for vc in clusters:
        vc["policy_label"] = QueuePolicy(vc["queue_policy"]).label
        for entry in vc["queue"]:
            task = visible.get(entry["id"])
            entry["task"] = task
            offered = allowed_actions(task, request.user) if task else []
            # One pinned task per queue: while one is, the others are not offered a pin the service would refuse.
            entry["actions"] = [
                a for a in offered if a in QUEUE_ACTIONS and not (a == Action.PIN and vc["pinned"])
            ]
            guess = estimates.get(entry["id"])
            entry["estimate"] = guess and {
                "text": _about(guess.seconds, now),
                "basis": ngettext(
                    "an estimate from the last %(count)s start from this queue while tasks waited: "
                    "one every %(interval)s (median)",
                    "an estimate from the last %(count)s starts from this queue while tasks waited: "
                    "one every %(interval)s (median)",
                    guess.basis,
                ) % {"count": guess.basis, "interval": _span(guess.interval, now)},
            }
    return {
        "template": "portal/_queue_page.html",
        "context": {"clusters": clusters, "back": reverse("portal:queue-page")},
        "url": reverse("portal:queue-page-live"), "element_id": "queue-page",
    }


@require_GET
@login_required
def queue_page(request):
    live = live_region(request, **_queue_page_region(request))[1]
    return render(request, "portal/queue_page.html", {"live": live})


@require_GET
@login_required
def queue_page_live(request):
    return live_response(request, **_queue_page_region(request))
