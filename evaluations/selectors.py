"""Reading evaluation runs for the portal: a task's runs, and the comparison of runs across tasks."""

from .models import Evaluation

COMPARISON_LIMIT = 100


def task_evaluations(*, task, limit=None):
    """The runs of ``task``, latest first."""
    runs = task.evaluations.select_related("created_by").order_by("-created_at", "-id")
    return runs[:limit] if limit else runs


def _figure(results, metric, statistic):
    value = (results.get(metric) or {}).get(statistic)
    return None if value is None else float(value)


def comparison_rows(*, user, task_ids=None, limit=COMPARISON_LIMIT):
    """Finished runs of the tasks ``user`` may see (optionally only of ``task_ids``), latest first, as rows
    of the comparison table: what was evaluated, with which load, and the headline figures."""
    runs = Evaluation.objects.visible_to(user).finished().select_related("task").order_by("-created_at", "-id")
    if task_ids:
        runs = runs.filter(task_id__in=task_ids)
    rows = []
    for run in runs[:limit]:
        results = run.results or {}
        config = run.task_config or {}
        rows.append({
            "evaluation": run,
            "task": run.task,
            "image": config.get("image", ""),
            "sku_count": config.get("sku_count"),
            "replicas": config.get("replicas"),
            "env": config.get("env", []),
            "completed": results.get("completed"),
            "failed": results.get("failed"),
            "request_throughput": results.get("request_throughput"),
            "output_throughput": results.get("output_throughput"),
            "ttft_p50": _figure(results, "ttft_ms", "p50"),
            "ttft_p99": _figure(results, "ttft_ms", "p99"),
            "tpot_p50": _figure(results, "tpot_ms", "p50"),
            "itl_p50": _figure(results, "itl_ms", "p50"),
            "e2el_p50": _figure(results, "e2el_ms", "p50"),
            "e2el_p99": _figure(results, "e2el_ms", "p99"),
        })
    return rows
