"""The banner every page shows while the platform itself is unwell: no deploy worker or no beat seen for
``HEALTH_STALE_SECONDS`` (``observability.health`` decides). Everyone is told that starts, stops and the queue
wait; managers also see which process is missing and since when. A live region: it appears and goes by itself."""

from django.urls import reverse
from django.views.decorators.http import require_GET

from clusters.permissions import is_manager
from observability.health import platform_health

from .live import live_region, live_response, login_required


def _health_region(request):
    health = platform_health()
    return {
        "template": "portal/_health_banner.html",
        "context": {"unwell": health.unwell, "manager": is_manager(request.user)},
        "url": reverse("portal:health-banner"), "element_id": "platform-health", "every": "10s",
    }


def health_region(request):
    return live_region(request, **_health_region(request))[1]


@require_GET
@login_required
def health_banner(request):
    return live_response(request, **_health_region(request))
