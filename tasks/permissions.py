"""The managers group and the permissions it carries."""

from django.contrib.auth.models import Group, Permission

MANAGERS_GROUP = "managers"
MANAGER_PERMISSION_CODENAMES = ("pin_task", "force_start_task", "view_all_tasks")


def ensure_managers_group():
    group, _ = Group.objects.get_or_create(name=MANAGERS_GROUP)
    perms = Permission.objects.filter(content_type__app_label="tasks", codename__in=MANAGER_PERMISSION_CODENAMES)
    group.permissions.add(*perms)
    return group
