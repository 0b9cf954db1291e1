"""The operations of a task's buttons, from the one catalogue (``tasks.states.OPERATIONS``).

GET answers the confirmation of an operation that asks first (for force start, the victims of the
preview); POST does it through ``scheduler.services.perform``, then goes back.
"""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from scheduler.force_start import task_force_start_preview
from scheduler.services import perform
from tasks.exceptions import OperationRefused
from tasks.states import OPERATIONS, Action

from .live import login_required
from .task_pages import visible_task

# The operations done at once (no form of their own): their URL is ``tasks/<pk>/<action>/``.
ACTIONS = [action for action, operation in OPERATIONS.items() if not operation.form]


def _back(request, fallback):
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return fallback


@require_http_methods(["GET", "POST"])
@login_required
def task_operation(request, pk, action):
    """GET: the confirmation (for force start, the victims of the preview); POST: do it, then go back."""
    task = visible_task(request, pk)
    operation = OPERATIONS[action]
    detail = reverse("portal:task-detail", args=[task.pk])
    if request.method == "GET":
        if not operation.confirm:
            return redirect(detail)
        context = {"task": task, "operation": operation, "label": Action(action).label, "next": _back(request, detail)}
        if action == Action.FORCE_START:
            try:
                context["preview"] = task_force_start_preview(task=task, user=request.user)
            except OperationRefused as refused:
                context["refused"] = refused.message
        template = "portal/_confirm.html" if request.htmx else "portal/confirm.html"
        return render(request, template, context)
    try:
        options = {}
        if action == Action.FORCE_START:  # bound to the preview the manager confirmed
            options["expected_victims"] = [int(v) for v in request.POST.getlist("victim") if v.isascii() and v.isdigit()]
        perform(action, task=task, user=request.user, **options)
    except OperationRefused as refused:
        messages.error(request, refused.message)
        return redirect(_back(request, detail))
    messages.success(request, operation.done % {"task": task.name})
    if action == Action.DELETE:
        return redirect("portal:task-list")
    return redirect(_back(request, detail))
