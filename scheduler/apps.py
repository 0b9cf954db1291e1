from django.apps import AppConfig
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = _("Scheduler")

    def ready(self):
        # Register the Celery tasks in every process (web included): services send to them by name.
        from . import tasks  # noqa: F401

        # The create / edit validation refuses a task that could never fit by the placement's own rule.
        from tasks.validation import use_capacity_rule

        from .selectors import capacity_warning

        use_capacity_rule(capacity_warning)

        if settings.DEPLOY_RUNTIME == "local":
            # Instances of a non-root worker run as its user: they must not read this process's environment.
            from .runtimes.local.isolation import make_non_dumpable

            make_non_dumpable()
