"""The managers' permissions, named once: the task model declares them, every check reads them from here.

They are permissions of ``tasks.Task`` (app label ``tasks``), kept here, at the bottom of the house,
because the first question they answer — may this user see every virtual cluster — is asked by
``clusters.querysets``.
"""

from django.utils.translation import gettext_lazy as _

APP_LABEL = "tasks"
PIN_TASK = "pin_task"
FORCE_START_TASK = "force_start_task"
VIEW_ALL_TASKS = "view_all_tasks"

# (codename, description): ``tasks.Task.Meta.permissions``.
MANAGER_PERMISSIONS = (
    (PIN_TASK, _("Can pin and unpin a queued task")),
    (FORCE_START_TASK, _("Can force-start a pinned task")),
    (VIEW_ALL_TASKS, _("Can see every task and virtual cluster")),
)


def perm(codename):
    """``user.has_perm``'s name for one of them: ``"tasks.pin_task"``."""
    return f"{APP_LABEL}.{codename}"


def is_manager(user) -> bool:
    """Managers see every task and every GPU pool (the managers group, or superusers)."""
    return bool(user and user.is_authenticated and (user.is_superuser or user.has_perm(perm(VIEW_ALL_TASKS))))
