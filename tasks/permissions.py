"""The managers group and the permissions it carries."""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from clusters.permissions import APP_LABEL, MANAGER_PERMISSIONS

MANAGERS_GROUP = "managers"


def ensure_managers_group():
    """The ``managers`` group: pin, force start, see everything, and run the GPU world in admin."""
    group, _ = Group.objects.get_or_create(name=MANAGERS_GROUP)
    perms = Permission.objects.filter(
        Q(content_type__app_label=APP_LABEL, codename__in=[codename for codename, _words in MANAGER_PERMISSIONS])
        | Q(content_type__app_label="clusters")
        | Q(content_type__app_label=APP_LABEL, codename__in=("view_task", "change_task", "view_taskevent"))
    )
    group.permissions.add(*perms)
    return group
