"""The REST API under /api/v1/ (SPEC's "REST API contract")."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .api_auth import ObtainTokenView

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("clusters.api.urls")),
    path("", include("tasks.api.urls")),
    path("", include("scheduler.api.urls")),
    path("", include("evaluations.api.urls")),
]
