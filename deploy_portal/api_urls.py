"""The REST API under /api/v1/ (owned by the REST API work; see SPEC's contract)."""

from django.urls import include, path

urlpatterns = [
    path("", include("evaluations.api.urls")),
]
