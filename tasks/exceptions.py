from django.utils.translation import gettext_lazy as _

from .states import OPERATIONS, Action, Status


class OperationRefused(Exception):
    """An operation the task's state (or the cluster) does not allow; the API answers 409."""

    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


class InvalidTransition(OperationRefused):
    """The state machine does not offer this operation from the task's current state."""

    def __init__(self, *, task, action, status=None, pinned=None):
        self.task = task
        self.action = action
        self.status = status if status is not None else task.status
        pinned = task.pinned if pinned is None else pinned
        label = Status(self.status).label
        operation = OPERATIONS.get(action)
        # The state is right but the pin is not: say which.
        wrong_pin = (
            operation is not None and self.status in operation.sources
            and operation.pinned is not None and operation.pinned != bool(pinned)
        )
        if wrong_pin and operation.pinned:
            message = _("Cannot %(action)s task “%(task)s”: it is queued but not pinned.")
        elif wrong_pin:
            message = _("Cannot %(action)s task “%(task)s”: it is already pinned.")
        else:
            message = _("Cannot %(action)s task “%(task)s”: it is %(status)s.")
        super().__init__(
            message % {"action": _action_label(action), "task": task.name, "status": str(label).lower()}
        )


def _action_label(action):
    """An operation's name in words; a transition of the system (``fail``, ``kill``) by its own name."""
    if action in Action.values:
        return str(Action(action).label).lower()
    return action
