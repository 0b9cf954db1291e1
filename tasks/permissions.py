"""The managers group and the permissions it carries."""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from clusters.permissions import APP_LABEL, MANAGER_PERMISSIONS

MANAGERS_GROUP = "managers"


def ensure_managers_group():
    """The ``managers`` group: pin, force start, see everything, run the GPU world in admin, and manage people:
    add users, reset their passwords, put them in groups and projects (``portal.admin.users`` keeps the
    permissions themselves, and superusers, out of their reach)."""
    group, _ = Group.objects.get_or_create(name=MANAGERS_GROUP)
    perms = Permission.objects.filter(
        Q(content_type__app_label=APP_LABEL, codename__in=[codename for codename, _words in MANAGER_PERMISSIONS])
        | Q(content_type__app_label="clusters")
        | Q(content_type__app_label=APP_LABEL, codename__in=("view_task", "change_task", "view_taskevent"))
        | Q(content_type__app_label="auth", codename__in=("view_user", "add_user", "change_user", "view_group"))
    )
    group.permissions.add(*perms)
    return group
