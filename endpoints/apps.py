from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EndpointsConfig(AppConfig):
    name = "endpoints"
    verbose_name = _("Endpoints: API keys and usage")
