"""The platform's health for machines: ``/healthz`` (liveness), ``/readyz`` (readiness) and
``GET /api/v1/health/`` (the same facts as JSON, with each worker for managers). The facts are
``observability.health``'s; these views only say them."""

from django.http import JsonResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.permissions import is_manager
from observability.health import readiness


@require_GET
@never_cache
def healthz(request):
    """Liveness: this process answers HTTP (it reads nothing, so a database outage restarts no web pod)."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request):
    """Readiness: 200 when the database and the broker answer and a deploy worker was seen recently, else 503."""
    ready, checks, _health = readiness()
    # Anonymous callers (load balancers, probes) get the verdicts, not the errors' text (hosts, ports).
    verdicts = {name: {"ok": check["ok"]} for name, check in checks.items()}
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": verdicts}, status=200 if ready else 503)


class HealthView(APIView):
    """The platform's health: database, broker, and when a deploy worker, an evaluations worker and beat were
    last seen; managers also see each process."""

    @extend_schema(
        summary=_("The platform's health"),
        responses={200: inline_serializer("Health", {
            "ready": serializers.BooleanField(), "unwell": serializers.ListField(child=serializers.CharField()),
            "checks": serializers.DictField(), "processes": serializers.ListField(child=serializers.DictField(), required=False),
        })},
    )
    def get(self, request):
        ready, checks, health = readiness()
        body = {"ready": ready, "unwell": [c.role for c in health.unwell] if health else [], "checks": checks}
        if health is not None and is_manager(request.user):
            body["processes"] = [
                {"role": component.role, "name": process.name, "seen_at": process.seen_at, "fresh": process.fresh}
                for component in health.components for process in component.processes
            ]
        return Response(body)


urlpatterns = [path("health/", HealthView.as_view(), name="health")]
