from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = _("Observability")

    def ready(self):
        # Register the Celery tasks in every process (web included): the timeline hook sends to them by name.
        from . import tasks  # noqa: F401
