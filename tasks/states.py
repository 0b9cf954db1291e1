"""The task state machine of SPEC, declared once.

Every state change goes through one row of ``TRANSITIONS``; every user-facing
operation is offered from the states ``OPERATIONS`` lists. The portal's buttons
and the API's ``allowed_actions`` are read from here, never re-listed.
"""

from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop as N_


class Status(models.TextChoices):
    NOT_DEPLOYED = "not_deployed", _("Not deployed")
    QUEUED = "queued", _("Queued")
    DEPLOYING = "deploying", _("Deploying")
    RUNNING = "running", _("Running")
    FAILED = "failed", _("Failed")
    STOPPED = "stopped", _("Stopped")
    KILLED = "killed", _("Killed")


# Only these states hold GPUs: their instances count against their machines.
HOLDING = frozenset({Status.DEPLOYING, Status.RUNNING})
# The task may be edited or deleted only here: it holds nothing and is not queued.
IDLE = frozenset({Status.NOT_DEPLOYED, Status.FAILED, Status.STOPPED, Status.KILLED})
STARTABLE = frozenset({Status.NOT_DEPLOYED, Status.STOPPED, Status.KILLED})


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset
    target: str
    label: str  # a message id: the event's words when the caller gives none (deploy_portal.sentences)


def _t(name, sources, target, label):
    return Transition(name, frozenset(sources), target, label)


TRANSITIONS = {
    t.name: t
    for t in (
        _t("deploy", STARTABLE, Status.DEPLOYING, N_("started and placed")),
        _t("enqueue", STARTABLE, Status.QUEUED, N_("started and queued")),
        _t("place", {Status.QUEUED}, Status.DEPLOYING, N_("placed by the scheduler")),
        _t("ready", {Status.DEPLOYING}, Status.RUNNING, N_("every instance is ready")),
        _t("fail", HOLDING, Status.FAILED, N_("failed")),
        _t("stop", {Status.QUEUED, Status.DEPLOYING, Status.RUNNING, Status.FAILED}, Status.STOPPED, N_("stopped")),
        _t("kill", HOLDING, Status.KILLED, N_("killed to make room for a force start")),
    )
}


class Action(models.TextChoices):
    """The operations a user may ask for; each is offered from the states below."""

    START = "start", _("Start")
    STOP = "stop", _("Stop")
    EVALUATE = "evaluate", _("Evaluate")
    PIN = "pin", _("Pin")
    UNPIN = "unpin", _("Unpin")
    FORCE_START = "force_start", _("Force start")
    COPY = "copy", _("Copy")
    EDIT = "edit", _("Edit")
    DELETE = "delete", _("Delete")


ALL_STATES = frozenset(Status.values)

# action -> (states it is offered from, whether the task must be pinned / unpinned)
OPERATIONS = {
    Action.START: STARTABLE,
    Action.STOP: TRANSITIONS["stop"].sources,
    Action.EVALUATE: frozenset({Status.RUNNING}),
    Action.PIN: frozenset({Status.QUEUED}),
    Action.UNPIN: frozenset({Status.QUEUED}),
    Action.FORCE_START: frozenset({Status.QUEUED}),
    Action.COPY: ALL_STATES,
    Action.EDIT: IDLE,
    Action.DELETE: IDLE,
}
# Which of them need the task pinned (True) or not pinned (False).
PIN_REQUIREMENT = {Action.PIN: False, Action.UNPIN: True, Action.FORCE_START: True}
# Manager operations and the Django permission each needs.
MANAGER_PERMISSIONS = {
    Action.PIN: "tasks.pin_task",
    Action.UNPIN: "tasks.pin_task",
    Action.FORCE_START: "tasks.force_start_task",
}


def state_allows(action, status, pinned=False) -> bool:
    """Whether the state machine offers ``action`` to a task in ``status``."""
    if status not in OPERATIONS[action]:
        return False
    need_pinned = PIN_REQUIREMENT.get(action)
    return need_pinned is None or need_pinned == bool(pinned)
