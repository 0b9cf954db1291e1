"""The REST API under /api/v1/ (SPEC's "REST API contract"): one module (or package) per resource."""

from django.http import JsonResponse
from django.urls import path, re_path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from . import api_keys, clusters, evaluations, health, queue, quotas, usage
from .auth import ObtainTokenView
from .tasks import views as tasks

router = SimpleRouter()
api_keys.register(router)
clusters.register(router)
quotas.register(router)
tasks.register(router)



class ApiIndex(APIView):
    """The resources of the API, each with its URL (follow them rather than build them)."""

    title = gettext_lazy("API index")

    @extend_schema(summary=gettext_lazy("The resources of the API"), responses={200: dict})
    def get(self, request):
        return Response({name: reverse(route, request=request) for name, route in INDEX.items()})


INDEX = {
    "tasks": "task-list", "projects": "project-list",
    "virtual_clusters": "virtual-cluster-list", "storages": "storage-list", "queue": "queue",
    "token": "api-token", "api_keys": "api-key-list", "schema": "api-schema", "docs": "api-docs", "health": "health",
}

urlpatterns = [
    path("", ApiIndex.as_view(), name="api-index"),
    path("auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    *router.urls,
    *queue.urlpatterns,
    *evaluations.urlpatterns,
    *usage.urlpatterns,
    *health.urlpatterns,
    # Anything else under /api/v1/ answers like the API does, not with the portal's HTML page.
    re_path(r"^", csrf_exempt(lambda request, *args, **kwargs: JsonResponse({"detail": _("Not found.")}, status=404))),
]
