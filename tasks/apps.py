from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _ensure_managers_group(sender, **kwargs):
    from .permissions import ensure_managers_group

    ensure_managers_group()


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = _("Deployment tasks")

    def ready(self):
        # Permissions exist only after migrate; the managers group follows them.
        post_migrate.connect(_ensure_managers_group, sender=self)
        from .secrets import check_keys

        checks.register(check_keys)
