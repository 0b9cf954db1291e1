"""The task state machine of SPEC, declared once.

Every state change goes through one row of ``TRANSITIONS``; every user-facing
operation is offered from the states ``OPERATIONS`` lists. The portal's buttons
and the API's ``allowed_actions`` are read from here, never re-listed.
"""

from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _

from deploy_portal.messages import N_

from clusters.permissions import FORCE_START_TASK, PIN_TASK, perm


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
    label: str  # a message id: the event's words when the caller gives none (deploy_portal.messages)
    run: str  # what it does to the task's run: "start" a new one, mark it "queued" / "placed" / "running", or "end" it


def _t(name, sources, target, label, run):
    return Transition(name, frozenset(sources), target, label, run)


TRANSITIONS = {
    t.name: t
    for t in (
        _t("deploy", STARTABLE, Status.DEPLOYING, N_("started and placed"), "start"),
        _t("enqueue", STARTABLE, Status.QUEUED, N_("started and queued"), "start"),
        _t("place", {Status.QUEUED}, Status.DEPLOYING, N_("placed by the scheduler"), "placed"),
        _t("ready", {Status.DEPLOYING}, Status.RUNNING, N_("every instance is ready"), "running"),
        _t("fail", HOLDING, Status.FAILED, N_("failed"), "end"),
        _t("stop", {Status.QUEUED, Status.DEPLOYING, Status.RUNNING, Status.FAILED}, Status.STOPPED, N_("stopped"), "end"),
        _t("kill", HOLDING, Status.KILLED, N_("killed to make room for a force start"), "end"),
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


@dataclass(frozen=True)
class Operation:
    """One operation a user may ask for, as every edge offers it.

    ``sources``: the states it is offered from; ``pinned``: whether the task must be pinned (True) or
    not (False), None when it does not matter; ``permission``: the manager permission it needs;
    ``confirm``: asked for twice, since it stops, kills or deletes something; ``form``: it takes input
    on a form of its own (copy, edit, evaluate) rather than being done at once; ``done``: what the
    portal and the admin say once it is done.
    """

    action: str
    sources: frozenset
    pinned: bool | None = None
    permission: str | None = None
    confirm: bool = False
    form: bool = False
    done: object = ""


# The catalogue of operations, in the order the portal draws their buttons: the portal's buttons,
# confirmations and URLs, the API's actions and ``allowed_actions``, and the admin's actions derive from it.
OPERATIONS = {
    op.action: op
    for op in (
        Operation(Action.START, STARTABLE, done=_("Task “%(task)s” started.")),
        Operation(Action.STOP, TRANSITIONS["stop"].sources, confirm=True, done=_("Task “%(task)s” stopped.")),
        Operation(Action.EVALUATE, frozenset({Status.RUNNING}), form=True),
        Operation(
            Action.PIN, frozenset({Status.QUEUED}), pinned=False, permission=perm(PIN_TASK),
            done=_("Task “%(task)s” pinned to the head of its queue."),
        ),
        Operation(
            Action.UNPIN, frozenset({Status.QUEUED}), pinned=True, permission=perm(PIN_TASK),
            done=_("Task “%(task)s” unpinned."),
        ),
        Operation(
            Action.FORCE_START, frozenset({Status.QUEUED}), pinned=True, permission=perm(FORCE_START_TASK),
            confirm=True, done=_("Task “%(task)s” force-started."),
        ),
        Operation(Action.COPY, ALL_STATES, form=True),
        Operation(Action.EDIT, IDLE, form=True),
        Operation(Action.DELETE, IDLE, confirm=True, done=_("Task “%(task)s” deleted.")),
    )
}


def state_allows(action, status, pinned=False) -> bool:
    """Whether the state machine offers ``action`` to a task in ``status``."""
    operation = OPERATIONS[action]
    if status not in operation.sources:
        return False
    return operation.pinned is None or operation.pinned == bool(pinned)


# What each timeline event is called: an operation of a user (its label), or what the system did.
_EVENT_LABELS = {
    "create": _("Create"), "deploy": _("Placed"), "place": _("Placed"), "enqueue": _("Queued"),
    "ready": _("Ready"), "fail": _("Failed"), "kill": _("Killed"),
    "reclaim": _("Reclaimed"),
}


def event_label(operation):
    """The name of a timeline event (``TaskEvent.operation``) in the active language."""
    if operation in _EVENT_LABELS:
        return _EVENT_LABELS[operation]
    if operation in Action.values:
        return Action(operation).label
    return operation
