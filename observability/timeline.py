"""How long tasks spent in each stage of a start, read from the task timeline: THE one place that knows.

A start is a run of timeline events: ``→ queued`` then ``queued → deploying`` (placed), then
``deploying → running``. A stage's duration is the time between the event that enters it and the next
state change of the same task, when that change is the one that ends the stage well (a queued task
stopped never waited its way to a placement). Everything here is SQL over ``tasks_taskevent``; when
the task's runs are kept as rows of their own, these functions read those instead and nothing else changes.
"""

from dataclasses import dataclass

from django.db import connection
from django.db.models import Count
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce

from tasks.models import TaskEvent
from tasks.states import Status

# stage name -> (the state it is, the state it ends in well)
STAGES = {
    "wait": (Status.QUEUED, Status.DEPLOYING),
    "deploy": (Status.DEPLOYING, Status.RUNNING),
}


def _seconds(later, earlier):
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def _stage_sql(stage, *, since=None, virtual_cluster_id=None):
    """SQL selecting (virtual_cluster_id, seconds) of every finished ``stage``, and its parameters."""
    entered, ended = STAGES[stage]
    where, params = ["c.to_status = %s", "c.next_status = %s"], [entered, ended]
    if since is not None:
        where.append("c.created_at >= %s")
        params.append(since)
    if virtual_cluster_id is not None:
        where.append("t.virtual_cluster_id = %s")
        params.append(virtual_cluster_id)
    sql = f"""
        WITH changes AS (
            SELECT e.task_id, e.to_status, e.created_at,
                   LEAD(e.to_status) OVER w AS next_status, LEAD(e.created_at) OVER w AS next_at
            FROM tasks_taskevent e
            WHERE e.from_status <> e.to_status
            WINDOW w AS (PARTITION BY e.task_id ORDER BY e.created_at, e.id)
        )
        SELECT t.virtual_cluster_id AS vc, {_seconds("c.next_at", "c.created_at")} AS seconds
        FROM changes c JOIN tasks_task t ON t.id = c.task_id
        WHERE {" AND ".join(where)}
    """
    return sql, params


def stage_seconds(stage, *, virtual_cluster_id, since=None):
    """Every finished ``stage``'s duration in seconds on one VC (entered at or after ``since``), in no order."""
    sql, params = _stage_sql(stage, since=since, virtual_cluster_id=virtual_cluster_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [float(seconds) for _vc, seconds in cursor.fetchall()]


@dataclass(frozen=True)
class StageHistogram:
    """Cumulative counts per upper bound (the last is +Inf), the sum of the durations and their count."""

    buckets: list
    sum: float
    count: int


def stage_histograms(stage, bounds):
    """{vc id: StageHistogram} of ``stage`` over the whole timeline, counted in one SQL aggregate."""
    inner, params = _stage_sql(stage)
    counts = ", ".join(f"SUM(CASE WHEN s.seconds <= {float(bound)!r} THEN 1 ELSE 0 END)" for bound in bounds)
    sql = f"SELECT s.vc, {counts}, SUM(s.seconds), COUNT(*) FROM ({inner}) s GROUP BY s.vc"
    result = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            total, count = row[-2], row[-1]
            cumulative = [int(value or 0) for value in row[1:-2]] + [int(count)]
            result[row[0]] = StageHistogram(buckets=cumulative, sum=float(total or 0), count=int(count))
    return result


def kills_by_cluster():
    """{vc id: tasks killed to make room for a force start}, over the whole timeline."""
    rows = (
        TaskEvent.objects.filter(to_status=Status.KILLED).exclude(from_status=Status.KILLED)
        .order_by().values_list("task__virtual_cluster_id").annotate(n=Count("id"))
    )
    return dict(rows)


def failures_by_message():
    """{(vc id, the innermost message id of the failure's words): count} of every task that failed."""
    innermost = Coalesce(
        KT("message__params__sentence__params__sentence__msgid"),  # an instance's words about its log
        KT("message__params__sentence__msgid"),  # "Instance 1 on gpu-01: …", "… Last log lines"
        KT("message__join__0__msgid"),  # the timeout, joined with what each instance was doing
        KT("message__msgid"),
    )
    rows = (
        TaskEvent.objects.filter(to_status=Status.FAILED).exclude(from_status=Status.FAILED)
        .order_by().annotate(msgid=innermost).values_list("task__virtual_cluster_id", "msgid").annotate(n=Count("id"))
    )
    return {(vc, msgid or ""): n for vc, msgid, n in rows}
