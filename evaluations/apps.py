from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EvaluationsConfig(AppConfig):
    name = "evaluations"
    verbose_name = _("Evaluations")

    def ready(self):
        # Register the Celery tasks in every process (web included): services send to them by name.
        from . import tasks  # noqa: F401
