from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from deploy_portal.api import health
from deploy_portal.portal import metrics
from deploy_portal.portal.urls import evaluation_urls

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("metrics", metrics.metrics, name="metrics"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/", include("deploy_portal.api.urls")),
    path("evaluations/", include(evaluation_urls)),
    path("", include("deploy_portal.portal.urls")),
]

handler400 = "deploy_portal.errors.bad_request"
handler403 = "deploy_portal.errors.permission_denied"
handler404 = "deploy_portal.errors.page_not_found"
handler500 = "deploy_portal.errors.server_error"
