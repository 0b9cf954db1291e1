"""One place answers "may this user do this to this task": the API, the portal and admin ask it."""

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _

from .exceptions import InvalidTransition
from .states import OPERATIONS, Action, state_allows


def has_action_permission(user, action) -> bool:
    perm = OPERATIONS[action].permission
    return perm is None or bool(user and user.is_authenticated and user.has_perm(perm))


def allowed_actions(task, user):
    """The actions this user may take on this task now (the task is assumed visible to them)."""
    return [
        action.value
        for action in OPERATIONS
        if has_action_permission(user, action) and state_allows(action, task.status, task.pinned)
    ]


def check_action(*, task, user, action):
    """Raise PermissionDenied (403) or InvalidTransition (409) unless the user may do ``action`` now."""
    if not has_action_permission(user, action):
        raise PermissionDenied(_("Only managers may %(action)s a task.") % {"action": str(Action(action).label).lower()})
    if not state_allows(action, task.status, task.pinned):
        raise InvalidTransition(task=task, action=action)
