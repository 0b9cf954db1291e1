"""Template helpers of the portal: status badges, a task's buttons, the live queue status."""

from django import template
from django.urls import reverse
from django.utils.safestring import mark_safe

from tasks.states import Action, Status

register = template.Library()

# How each operation is offered: a form that posts at once, a confirmation dialog first, or a page.
_POST, _CONFIRM, _LINK = "post", "confirm", "link"
_KIND = {
    Action.START: _POST, Action.PIN: _POST, Action.UNPIN: _POST,
    Action.STOP: _CONFIRM, Action.FORCE_START: _CONFIRM, Action.DELETE: _CONFIRM,
    Action.COPY: _LINK, Action.EDIT: _LINK, Action.EVALUATE: _LINK,
}
_PAGES = {Action.COPY: "portal:task-copy", Action.EDIT: "portal:task-edit"}
_DANGER = {Action.STOP, Action.FORCE_START, Action.DELETE}


def _link(action, task):
    if action == Action.EVALUATE:
        return reverse("portal:task-detail", args=[task.pk]) + "#evaluations"
    return reverse(_PAGES[action], args=[task.pk])


@register.inclusion_tag("portal/_status_badge.html")
def status_badge(task):
    return {"status": task.status, "label": Status(task.status).label, "pinned": task.pinned}


@register.inclusion_tag("portal/_buttons.html")
def task_buttons(task, actions, back, compact=False):
    """The operations ``actions`` (from ``tasks.access.allowed_actions``) as buttons, in the state machine's order."""
    buttons = []
    for action in actions:
        kind = _KIND[action]
        url = _link(action, task) if kind == _LINK else reverse("portal:task-operation", args=[task.pk, action])
        buttons.append({
            "action": action, "label": Action(action).label, "kind": kind, "url": url, "danger": action in _DANGER,
        })
    return {"buttons": buttons, "back": back, "task": task, "compact": compact}


@register.simple_tag(takes_context=True)
def queue_sidebar(context):
    """The live queue status; rendered in place so that the first paint already shows it."""
    from tasks.views import queue_region

    request = context["request"]
    if not request.user.is_authenticated:
        return ""
    return mark_safe(queue_region(request))  # noqa: S308 - rendered by our own template
