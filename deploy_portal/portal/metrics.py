"""``/metrics``: the Prometheus exposition of the GPU world and of the processes' own measurements.

Open to the networks in ``METRICS_ALLOWED_NETWORKS`` (loopback by default) and to any client that sends
``Authorization: Bearer <METRICS_TOKEN>`` when a token is set; every other request answers 403.

The GPU world (``observability.metrics.GpuWorldCollector``) is read from the database at each scrape.
The histograms observed in processes (``scheduler.instruments``) come from this process alone, or, with
``PROMETHEUS_MULTIPROC_DIR`` set, from every process that shares that directory, summed by
``prometheus_client``'s multiprocess collector (gunicorn's workers and the Celery workers of one host).
"""

import hmac
import ipaddress
import os

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from observability.metrics import GpuWorldCollector


def _allowed(request):
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in settings.METRICS_ALLOWED_NETWORKS)


def _process_registry():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def exposition():
    """The text exposition: the processes' measurements, then the GPU world."""
    world = CollectorRegistry(auto_describe=False)
    world.register(GpuWorldCollector())
    return generate_latest(_process_registry()) + generate_latest(world)


@require_GET
def metrics(request):
    if not _allowed(request):
        return HttpResponseForbidden("metrics are open to METRICS_ALLOWED_NETWORKS or the METRICS_TOKEN bearer\n")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
