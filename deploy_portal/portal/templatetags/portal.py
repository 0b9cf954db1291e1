"""Template helpers of the portal: status badges, a task's buttons, the live queue status."""

import shlex

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from deploy_portal.messages import render
from tasks import states
from tasks.states import OPERATIONS, Action, Status

from ..health import health_region
from ..queue import queue_region

register = template.Library()

# The pages of the operations that take input (``Operation.form``); the evaluate form opens in a dialog.
_FORM_PAGES = {Action.COPY: "portal:task-copy", Action.EDIT: "portal:task-edit", Action.EVALUATE: "evaluations:create"}
_IN_DIALOG = {Action.EVALUATE}


def _button(action, task):
    """How the catalogue's operation is offered: a page of its own, a dialog first (it asks, or its form is
    small), or a form that posts at once."""
    operation = OPERATIONS[action]
    if operation.form:
        kind = "dialog" if action in _IN_DIALOG else "link"
        url = reverse(_FORM_PAGES[action], args=[task.pk])
    else:
        kind = "dialog" if operation.confirm else "post"
        url = reverse("portal:task-operation", args=[task.pk, action])
    return {"action": action, "label": Action(action).label, "kind": kind, "url": url, "danger": operation.confirm}


@register.filter
def event_label(operation):
    return states.event_label(operation)


@register.filter
def shell(words):
    """A command (a list of words) as a shell would read it back: quoted where a word needs it."""
    return shlex.join(str(word) for word in words)


@register.simple_tag
def local_runtime():
    """Whether tasks run as local processes (``DEPLOY_RUNTIME=local``): the port and command work differently."""
    return settings.DEPLOY_RUNTIME == "local"


@register.filter
def said(message):
    """A stored message (``deploy_portal.messages.Sentence``) in the reader's language."""
    return render(message)


@register.filter
def run_duration(duration):
    """A run's duration as ``2 h 05 min`` / ``3 min 20 s``."""
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return _("%(h)s h %(m)02d min") % {"h": hours, "m": minutes}
    return _("%(m)s min %(s)02d s") % {"m": minutes, "s": seconds}


@register.filter
def run_gpus(run):
    return sum(instance.gpu_count for instance in run.instances.all())


@register.inclusion_tag("portal/_status_badge.html")
def status_badge(task):
    return {"status": task.status, "label": Status(task.status).label, "pinned": task.pinned}


@register.inclusion_tag("portal/_buttons.html")
def task_buttons(task, actions, back, compact=False):
    """The operations ``actions`` (from ``tasks.access.allowed_actions``) as buttons, in the state machine's order."""
    buttons = [_button(action, task) for action in actions]
    return {"buttons": buttons, "back": back, "task": task, "compact": compact}


def _in_place(context, region):
    """A live region rendered in place (so the first paint shows it), for a logged-in reader only."""
    request = context["request"]
    if not request.user.is_authenticated:
        return ""
    return mark_safe(region(request))  # rendered by our own template, autoescaped


@register.simple_tag(takes_context=True)
def health_banner(context):
    """The platform-health banner (empty while all is well)."""
    return _in_place(context, health_region)


@register.simple_tag(takes_context=True)
def queue_sidebar(context):
    """The live queue status under the navigation."""
    return _in_place(context, queue_region)
