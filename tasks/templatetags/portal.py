"""Template helpers of the portal: status badges, a task's buttons, the live queue status."""

from django import template
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from tasks.states import Action, Status

register = template.Library()

# How each operation is offered: a form that posts at once, a dialog first (a confirmation, or the
# evaluation form), or a page of its own.
_POST, _DIALOG, _LINK = "post", "dialog", "link"
_KIND = {
    Action.START: _POST, Action.PIN: _POST, Action.UNPIN: _POST,
    Action.STOP: _DIALOG, Action.FORCE_START: _DIALOG, Action.DELETE: _DIALOG, Action.EVALUATE: _DIALOG,
    Action.COPY: _LINK, Action.EDIT: _LINK,
}
_PAGES = {Action.COPY: "portal:task-copy", Action.EDIT: "portal:task-edit", Action.EVALUATE: "evaluations:create"}
_DANGER = {Action.STOP, Action.FORCE_START, Action.DELETE}


def _url(action, task):
    if action in _PAGES:
        return reverse(_PAGES[action], args=[task.pk])
    return reverse("portal:task-operation", args=[task.pk, action])


# Timeline events name what happened: an operation of a user, or what the system observed.
_EVENTS = {
    "create": _("Create"), "deploy": _("Placed"), "place": _("Placed"), "enqueue": _("Queued"),
    "ready": _("Ready"), "fail": _("Failed"), "kill": _("Killed"),
}


@register.filter
def event_label(operation):
    if operation in _EVENTS:
        return _EVENTS[operation]
    if operation in Action.values:
        return Action(operation).label
    return operation


@register.inclusion_tag("portal/_status_badge.html")
def status_badge(task):
    return {"status": task.status, "label": Status(task.status).label, "pinned": task.pinned}


@register.inclusion_tag("portal/_buttons.html")
def task_buttons(task, actions, back, compact=False):
    """The operations ``actions`` (from ``tasks.access.allowed_actions``) as buttons, in the state machine's order."""
    buttons = []
    for action in actions:
        buttons.append({
            "action": action, "label": Action(action).label, "kind": _KIND[action], "url": _url(action, task),
            "danger": action in _DANGER,
        })
    return {"buttons": buttons, "back": back, "task": task, "compact": compact}


@register.simple_tag(takes_context=True)
def queue_sidebar(context):
    """The live queue status; rendered in place so that the first paint already shows it."""
    from tasks.views import queue_region

    request = context["request"]
    if not request.user.is_authenticated:
        return ""
    return mark_safe(queue_region(request))  # rendered by our own template, autoescaped
