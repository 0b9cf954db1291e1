"""The live queue status under the navigation (SPEC's queue status of every VC the user may see)."""

from django.urls import reverse
from django.views.decorators.http import require_GET

from scheduler import selectors

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
