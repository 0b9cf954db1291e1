"""The REST API under /api/v1/ (SPEC's "REST API contract"): one module (or package) per resource."""

from django.http import JsonResponse
from django.urls import path, re_path
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from . import clusters, evaluations, queue, quotas
from .auth import ObtainTokenView
from .tasks import views as tasks

router = SimpleRouter()
clusters.register(router)
quotas.register(router)
tasks.register(router)

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    *router.urls,
    *queue.urlpatterns,
    *evaluations.urlpatterns,
    # Anything else under /api/v1/ answers like the API does, not with the portal's HTML page.
    re_path(r"^", csrf_exempt(lambda request, *args, **kwargs: JsonResponse({"detail": _("Not found.")}, status=404))),
]
