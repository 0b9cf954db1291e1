"""Portal pages of evaluations: the evaluate dialog, a run's results, the comparison across tasks."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from evaluations.metrics import LATENCY_METRICS
from evaluations.models import Evaluation
from evaluations.selectors import comparison_rows
from evaluations.services import evaluation_check, evaluation_create
from tasks.exceptions import OperationRefused
from tasks.models import Task

from .charts import histogram_chart
from .forms import EvaluationForm
from .live import login_required, visible_or_404

METRIC_LABELS = {
    "ttft": gettext_lazy("Time to first token"),
    "tpot": gettext_lazy("Time per output token"),
    "itl": gettext_lazy("Inter-token latency"),
    "e2el": gettext_lazy("End-to-end latency"),
}


def _refusal_text(refused):
    return str(getattr(refused, "message", None) or refused)


@login_required
@require_http_methods(["GET", "POST"])
def evaluation_create_view(request, task_id):
    """GET: the evaluate form (a dialog fragment for htmx); POST: start the run and show it."""
    task = visible_or_404(request, Task.objects.select_related("virtual_cluster"), task_id)
    if request.method == "GET":
        try:
            evaluation_check(task=task, user=request.user)
        except (OperationRefused, PermissionDenied) as refused:
            context = {"task": task, "refused": _refusal_text(refused)}
            if request.htmx:  # htmx swaps only 2xx answers into the dialog
                return render(request, "evaluations/_refused.html", context)
            return render(request, "evaluations/refused.html", context, status=409)
    form = EvaluationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        parameters = {name: form.cleaned_data[name] for name in form.Meta.fields}
        try:
            evaluation = evaluation_create(task=task, user=request.user, parameters=parameters)
        except ValidationError as error:
            form.add_error(None, error)
        except (OperationRefused, PermissionDenied) as refused:
            messages.error(request, _refusal_text(refused))
            return redirect("portal:task-detail", task.pk)
        else:
            messages.success(request, _("Evaluation of “%(task)s” started.") % {"task": task.name})
            return redirect("evaluations:detail", evaluation.pk)
    template = "evaluations/_form.html" if request.htmx else "evaluations/evaluation_form.html"
    return render(request, template, {"task": task, "form": form})


@login_required
@require_GET
def evaluation_detail_view(request, pk):
    """A run's parameters and results, with latency distribution charts; polled by htmx while it runs."""
    evaluation = visible_or_404(request, Evaluation.objects.select_related("task", "created_by"), pk)
    results = evaluation.results or {}
    samples = results.get("samples_ms") or {}
    context = {
        "evaluation": evaluation,
        "results": results,
        "metrics": [
            {"name": name, "label": METRIC_LABELS[name], **(results.get(f"{name}_ms") or {})}
            for name in LATENCY_METRICS
        ] if results else [],
        "charts": [
            {"label": METRIC_LABELS["e2el"], "chart": histogram_chart(samples.get("e2el") or [])},
            {"label": METRIC_LABELS["ttft"], "chart": histogram_chart(samples.get("ttft") or [])},
        ],
    }
    if request.htmx:
        if evaluation.is_active and request.GET.get("seen") == evaluation.progress_key:
            return HttpResponse(status=204)  # nothing changed since the last poll
        response = render(request, "evaluations/_results.html", context)
        if not evaluation.is_active:
            # Finished while the page watched: reload it whole, so that its header (the model the run
            # resolved, the status) reads as the results do; the reloaded page polls no more.
            response["HX-Refresh"] = "true"
        return response
    return render(request, "evaluations/evaluation_detail.html", context)


@login_required
@require_GET
def evaluation_list_view(request):
    """The comparison table: finished runs across the tasks the user may see; ``?task=ID`` narrows it."""
    task_ids = request.GET.getlist("task")
    # str.isdigit() says yes to "²"; an id is ASCII digits, no longer than a bigint's.
    if not all(value.isascii() and value.isdigit() and len(value) <= 18 for value in task_ids):
        return HttpResponseBadRequest(_("?task= takes task ids (whole numbers)."), content_type="text/plain; charset=utf-8")
    tasks = Task.objects.visible_to(request.user).filter(evaluations__isnull=False).distinct().order_by("name")
    return render(request, "evaluations/evaluation_list.html", {
        "rows": comparison_rows(user=request.user, task_ids=task_ids),
        "tasks": tasks,
        "selected": {int(value) for value in task_ids},
    })
