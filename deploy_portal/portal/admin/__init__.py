"""Django admin: every ModelAdmin and admin action, registered when the admin discovers this app."""

from . import clusters, evaluations, observability, tasks, users  # noqa: F401 - they register their models
