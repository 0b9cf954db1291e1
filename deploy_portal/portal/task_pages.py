"""A task's pages: the list, create / copy / edit, details, instances and logs, the VC info of the form.

Each view finds what the user may see, calls one service, then renders or redirects.
"""

import json
import shlex

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods

from clusters.models import VirtualCluster
from endpoints.paths import gateway_url
from endpoints.selectors import task_usage
from evaluations.loadgen import EndpointError, model_ids
from scheduler import selectors
from scheduler.logs import instance_log_attachment, instance_log_chunks, instance_log_text
from tasks import services
from tasks.access import allowed_actions, check_action
from tasks.exceptions import OperationRefused
from tasks.filtersets import TaskFilterSet
from tasks.models import Task, TaskInstance
from tasks.secrets import env_public
from tasks.states import HOLDING, Action, Status

from .charts import hourly_chart
from .forms import TaskForm
from .live import live_region, live_response, login_required, visible_or_404
from .utilisation import gpu_utilisation_context

LOG_TAIL_LINES = 1000
MODELS_TIMEOUT = 2.0  # seconds the page waits for an endpoint's /v1/models


def visible_task(request, pk):
    return visible_or_404(request, Task.objects.select_related("project", "virtual_cluster", "owner"), pk)


def _task_rows(tasks, user):
    queued = [t for t in tasks if t.status == Status.QUEUED]
    queue = selectors.queue_info_for(queued, user=user) if queued else {}
    return [{"task": t, "actions": allowed_actions(t, user), "queue": queue.get(t.pk)} for t in tasks]


def _list_region(request):
    visible = Task.objects.visible_to(request.user).select_related("project", "virtual_cluster", "owner")
    filterset = TaskFilterSet(request.GET, queryset=visible, request=request)
    # The shared filters, drawn for people: the statuses as check boxes rather than a multiple select.
    status = filterset.form.fields["status"]
    status.widget = forms.CheckboxSelectMultiple(choices=status.choices, attrs={"class": "status-choices"})
    page = Paginator(filterset.qs, 20).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("v", None)
    back = reverse("portal:task-list") + (f"?{query.urlencode()}" if query else "")
    region = {
        "template": "portal/_task_rows.html",
        "context": {"rows": _task_rows(list(page.object_list), request.user), "page": page, "back": back},
        "url": reverse("portal:task-rows") + (f"?{query.urlencode()}" if query else ""),
        "element_id": "task-rows",
    }
    return filterset, page, region


@login_required
def task_list(request):
    filterset, page, region = _list_region(request)
    rows = live_region(request, **region)[1]
    return render(request, "portal/task_list.html", {"filter": filterset, "page": page, "rows": rows})


@require_GET
@login_required
def task_rows(request):
    return live_response(request, **_list_region(request)[2])


# --- create, copy, edit ------------------------------------------------------------------------

def _form_page(request, form, service, *, mode, task=None):
    saved = form.submit(service) if request.method == "POST" else None
    if saved is not None:
        messages.success(request, _("Task “%(task)s” saved.") % {"task": saved.name})
        return redirect("portal:task-detail", pk=saved.pk)
    return render(request, "portal/task_form.html", {"form": form, "mode": mode, "task": task})


@require_http_methods(["GET", "POST"])
@login_required
def task_create(request):
    form = TaskForm(
        request.POST if request.method == "POST" else None, user=request.user,
        initial={"env": [{"name": "SHM_SIZE", "value": ""}]},
    )
    return _form_page(request, form, lambda data: services.task_create(user=request.user, data=data), mode="create")


@require_http_methods(["GET", "POST"])
@login_required
def task_copy(request, pk):
    source = visible_task(request, pk)
    form = TaskForm(
        request.POST if request.method == "POST" else None, user=request.user,
        initial=services.task_config(source), locked=services.FIXED_ON_COPY,
    )
    return _form_page(
        request, form, lambda data: services.task_copy(task=source, user=request.user, overrides=data),
        mode="copy", task=source,
    )


@require_http_methods(["GET", "POST"])
@login_required
def task_edit(request, pk):
    task = visible_task(request, pk)
    form = TaskForm(
        request.POST if request.method == "POST" else None, user=request.user,
        initial=services.task_config(task), locked=services.FIXED_ON_COPY,
    )
    try:
        if request.method == "GET":
            # Say at once that this task cannot be edited now, rather than after the user filled the form.
            check_action(task=task, user=request.user, action=Action.EDIT)
        return _form_page(
            request, form, lambda data: services.task_update(task=task, user=request.user, data=data),
            mode="edit", task=task,
        )
    except OperationRefused as refused:
        messages.error(request, refused.message)
        return redirect("portal:task-detail", pk=task.pk)


@require_GET
@login_required
def vc_info(request):
    """The chosen VC's SKU bundle and free GPUs, and the SHM_SIZE that suits the chosen SKU count."""
    vc = VirtualCluster.objects.usable_by(request.user).filter(pk=_int(request.GET.get("virtual_cluster"))).first()
    if vc is None:
        return HttpResponse("")
    status = next(iter(selectors.queue_status(user=request.user, virtual_cluster_id=vc.pk, limit=0)), None)
    sku_count = max(_int(request.GET.get("sku_count")) or 1, 1)
    replicas = max(_int(request.GET.get("replicas")) or 1, 1)
    context = {
        "vc": vc, "status": status, "sku_count": sku_count,
        "warning": selectors.capacity_warning(virtual_cluster=vc, sku_count=sku_count, replicas=replicas),
        "gpus": sku_count * vc.sku_gpus, "cpus": sku_count * vc.sku_cpus, "memory": sku_count * vc.sku_memory_gib,
        # Half of the instance's memory is a common /dev/shm for multi-GPU serving.
        "shm_size": f"{sku_count * vc.sku_memory_gib // 2}G",
    }
    return render(request, "portal/_vc_info.html", context)


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- a task's pages ----------------------------------------------------------------------------

def _task_region(request, task):
    queue = selectors.queue_info_for([task], user=request.user).get(task.pk) if task.status == Status.QUEUED else None
    progress = list(task.instances.all()) if task.status == Status.DEPLOYING else []
    context = {
        "task": task, "actions": allowed_actions(task, request.user), "queue": queue,
        "gateway_url": gateway_url(task),
        "events": task.events.select_related("actor"),
        # While deploying, each instance's progress (pulling, starting, waiting for its port, ready).
        "progress": progress,
        # Deploying, and no instance applied yet: the deploy message waits for a worker to take it.
        "waiting_for_worker": task.status == Status.DEPLOYING and not any(instance.handle for instance in progress),
        "back": reverse("portal:task-detail", args=[task.pk]),
    }
    return {
        "template": "portal/_task_live.html", "context": context,
        "url": reverse("portal:task-live", args=[task.pk]), "element_id": "task-live",
    }


@require_GET
@login_required
def task_detail(request, pk):
    task = visible_task(request, pk)
    live = live_region(request, **_task_region(request, task))[1]
    config = {**services.task_config(task), "env": env_public(task.env)}
    context = {"task": task, "tab": "details", "live": live, "config": config}
    if settings.GATEWAY_URL:
        context["usage"] = _usage_context(task_usage(task))
    return render(request, "portal/task_detail.html", context)


def _usage_context(rows):
    """The usage card: the day's totals, and requests and tokens per hour as bars."""
    totals = {field: sum(row[field] for row in rows) for field in ("requests", "errors", "prompt_tokens", "completion_tokens")}
    for row in rows:
        row["tokens"] = row["prompt_tokens"] + row["completion_tokens"]
    charts = [
        {"name": "requests", "label": _("Requests per hour"), "geometry": hourly_chart(rows, "requests")},
        {"name": "tokens", "label": _("Tokens per hour (prompt and completion)"), "geometry": hourly_chart(rows, "tokens")},
    ]
    return {"totals": totals, "charts": charts}


@require_GET
@login_required
def task_live(request, pk):
    return live_response(request, **_task_region(request, visible_task(request, pk)))


def _instances_region(request, task):
    instances = list(TaskInstance.objects.filter(run_id=task.current_run_id).order_by("index"))
    context = {
        "task": task, "instances": instances, "following": task.status in HOLDING,
        **gpu_utilisation_context(task, instances),
    }
    return {
        "template": "portal/_instances.html", "context": context,
        "url": reverse("portal:task-instances-live", args=[task.pk]), "element_id": "instances",
    }


@require_GET
@login_required
def task_instances(request, pk):
    task = visible_task(request, pk)
    live = live_region(request, **_instances_region(request, task))[1]
    return render(request, "portal/task_instances.html", {"task": task, "tab": "instances", "live": live})


@require_GET
@login_required
def task_instances_live(request, pk):
    return live_response(request, **_instances_region(request, visible_task(request, pk)))


def _visible_instance(request, pk):
    return visible_or_404(request, TaskInstance.objects.select_related("task"), pk)


@require_GET
@login_required
def instance_log(request, pk):
    """The instance's log (its last ``tail`` lines), live while it exists, else the archive."""
    instance = _visible_instance(request, pk)
    tail = min(max(_int(request.GET.get("tail")) or LOG_TAIL_LINES, 1), 100_000)
    return HttpResponse(instance_log_text(instance, tail=tail), content_type="text/plain; charset=utf-8")


@require_GET
@login_required
def instance_log_download(request, pk):
    instance = _visible_instance(request, pk)
    # The whole log as it is now (a download must end, even while the instance keeps writing), streamed.
    response = StreamingHttpResponse(instance_log_chunks(instance), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = instance_log_attachment(instance)
    return response


@require_GET
@login_required
def task_runs(request, pk):
    """Every run of the task, newest first: outcome, duration, GPUs, and each instance with its log."""
    task = visible_task(request, pk)
    runs = task.runs.select_related("started_by", "killed_by", "killed_for").prefetch_related("instances")
    page = Paginator(runs.order_by("-number"), 20).get_page(request.GET.get("page"))
    return render(request, "portal/task_runs.html", {"task": task, "tab": "runs", "page": page})


@require_GET
@login_required
def task_models(request, pk):
    """The model ids the running task's endpoint lists (``GET /v1/models``), with ready-to-copy examples."""
    task = visible_task(request, pk)
    if not task.endpoint:
        return HttpResponse("")
    try:
        ids, error = model_ids(task.endpoint, timeout=MODELS_TIMEOUT), None
    except EndpointError as exc:
        ids, error = [], str(exc)
    context = {"task": task, "ids": ids, "error": error}
    if ids:
        # Through the gateway when there is one (the address users keep), the raw endpoint otherwise.
        via = gateway_url(task)
        context["examples"] = (
            _examples(via.rstrip("/"), ids[0], keyed=not task.public_endpoint) if via else _examples(task.endpoint, ids[0])
        )
    return render(request, "portal/_models.html", context)


def _examples(endpoint, model, *, keyed=False):
    """A first request to the endpoint with curl and with the OpenAI client (``model``: an id it lists); ``keyed``:
    through the gateway with a key, read from ``$DEPLOY_PORTAL_KEY`` (made on the keys page)."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello"}]}, ensure_ascii=False)
    auth = ["-H", "Authorization: Bearer $DEPLOY_PORTAL_KEY"] if keyed else []
    curl = shlex.join(["curl", f"{endpoint}/v1/chat/completions", "-H", "Content-Type: application/json", *auth, "-d", body])
    if keyed:  # the shell expands the variable: double quotes around the header
        curl = curl.replace("'Authorization: Bearer $DEPLOY_PORTAL_KEY'", '"Authorization: Bearer $DEPLOY_PORTAL_KEY"')
    api_key = 'os.environ["DEPLOY_PORTAL_KEY"]' if keyed else '"unused"'
    python = (
        ("import os\n\n" if keyed else "") + "from openai import OpenAI\n\n"
        f"client = OpenAI(base_url={json.dumps(f'{endpoint}/v1')}, api_key={api_key})\n"
        f"answer = client.chat.completions.create(model={json.dumps(model)}, "
        "messages=[{\"role\": \"user\", \"content\": \"Hello\"}])\n"
        "print(answer.choices[0].message.content)"
    )
    return {"curl": curl, "python": python}
