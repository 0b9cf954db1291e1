from django.utils.translation import gettext_lazy as _


class OperationRefused(Exception):
    """An operation the task's state (or the cluster) does not allow; the API answers 409."""

    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


class InvalidTransition(OperationRefused):
    """The state machine does not offer this operation from the task's current state."""

    def __init__(self, *, task, action, status=None, pinned=None):
        from .states import Status

        self.task = task
        self.action = action
        self.status = status if status is not None else task.status
        pinned = task.pinned if pinned is None else pinned
        label = Status(self.status).label
        if action in ("unpin", "force_start") and self.status == Status.QUEUED and not pinned:
            message = _("Cannot %(action)s task “%(task)s”: it is queued but not pinned.")
        elif action == "pin" and self.status == Status.QUEUED and pinned:
            message = _("Cannot %(action)s task “%(task)s”: it is already pinned.")
        else:
            message = _("Cannot %(action)s task “%(task)s”: it is %(status)s.")
        super().__init__(
            message % {"action": _action_label(action), "task": task.name, "status": str(label).lower()}
        )


def _action_label(action):
    from .states import TRANSITIONS, Action

    if action in Action.values:
        return str(Action(action).label).lower()
    if action in TRANSITIONS:
        return action
    return action
