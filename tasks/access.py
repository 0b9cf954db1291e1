"""One place answers "may this user do this to this task": the API, the portal and admin ask it."""

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _

from .exceptions import InvalidTransition
from .models import Task
from .states import MANAGER_PERMISSIONS, Action, state_allows


def can_see(user, task) -> bool:
    return Task.objects.visible_to(user).filter(pk=task.pk).exists()


def has_action_permission(user, action) -> bool:
    perm = MANAGER_PERMISSIONS.get(action)
    return perm is None or bool(user and user.is_authenticated and user.has_perm(perm))


def allowed_actions(task, user):
    """The actions this user may take on this task now (the task is assumed visible to them)."""
    return [
        action.value
        for action in Action
        if has_action_permission(user, action) and state_allows(action, task.status, task.pinned)
    ]


def check_action(*, task, user, action):
    """Raise PermissionDenied (403) or InvalidTransition (409) unless the user may do ``action`` now."""
    if not has_action_permission(user, action):
        raise PermissionDenied(_("Only managers may %(action)s a task.") % {"action": str(Action(action).label).lower()})
    if not state_allows(action, task.status, task.pinned):
        raise InvalidTransition(task=task, action=action)
