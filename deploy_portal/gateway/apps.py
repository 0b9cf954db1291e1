from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GatewayConfig(AppConfig):
    """The gateway edge as an app only for its command (``manage.py run_gateway``); it has no models."""

    name = "deploy_portal.gateway"
    label = "gateway"
    verbose_name = _("Endpoint gateway")
