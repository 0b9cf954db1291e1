from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    """The portal's edge as a Django app: its template tags, the admin, and the site's commands."""

    name = "deploy_portal.portal"
    label = "portal"
    verbose_name = _("Portal")
