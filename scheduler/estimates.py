"""How long a queued task may still wait: an estimate from the VC's own history, said with its basis.

The history is the TaskEvent timeline (no other record): each start from the queue (``queued → deploying``,
by the pass or a force start) and the enqueue before it. While a queue is busy — the next task was already
waiting when the one before it started — the interval between two such starts is how fast the queue moves.
A task at position *p* waits about *p* such intervals (their median). With fewer than ``MIN_INTERVALS``
busy intervals in the window the history is too thin, and there is no estimate rather than a wrong one.
"""

from dataclasses import dataclass
from datetime import timedelta
from statistics import median

from django.db.models import Q
from django.utils import timezone

from tasks.models import TaskEvent
from tasks.states import Status

WINDOW = timedelta(days=30)
RECENT_STARTS = 50  # the newest starts from the queue that are considered, per VC
MIN_INTERVALS = 5


@dataclass(frozen=True)
class WaitEstimate:
    seconds: float  # the estimated wait from now
    interval: float  # the median seconds between two starts from the busy queue
    basis: int  # how many busy intervals the median is taken over


def busy_intervals(starts):
    """Seconds between consecutive starts from the queue while it was busy; ``starts`` is
    [(enqueued_at, started_at)] in order of ``started_at`` (datetimes)."""
    intervals = []
    for (_enq, before), (enqueued, started) in zip(starts, starts[1:]):
        if enqueued is not None and enqueued <= before:
            intervals.append((started - before).total_seconds())
    return intervals


def estimate(position, intervals):
    """A WaitEstimate for the task at ``position`` (1 is the head), or None when the history is thin."""
    if len(intervals) < MIN_INTERVALS:
        return None
    interval = median(intervals)
    return WaitEstimate(seconds=position * interval, interval=interval, basis=len(intervals))


def queue_starts(virtual_cluster_ids, *, now=None):
    """{vc id: [(enqueued_at, started_at)]}: the newest starts from each VC's queue, oldest first, in one query."""
    since = (now or timezone.now()) - WINDOW
    rows = (
        TaskEvent.objects.filter(task__virtual_cluster_id__in=list(virtual_cluster_ids), created_at__gte=since)
        .filter(Q(to_status=Status.QUEUED) | Q(from_status=Status.QUEUED, to_status=Status.DEPLOYING))
        .order_by("created_at", "id")
        .values_list("task_id", "task__virtual_cluster_id", "to_status", "created_at")
    )
    enqueued, starts = {}, {}
    for task_id, vc_id, to_status, at in rows:
        if to_status == Status.QUEUED:
            enqueued[task_id] = at
        else:
            starts.setdefault(vc_id, []).append((enqueued.pop(task_id, None), at))
    return {vc_id: found[-RECENT_STARTS:] for vc_id, found in starts.items()}


def wait_estimates(positions, *, now=None):
    """{task id: WaitEstimate | None} for ``positions`` ({vc id: {task id: position}}), in one query."""
    starts = queue_starts(positions, now=now)
    result = {}
    for vc_id, tasks in positions.items():
        intervals = busy_intervals(starts.get(vc_id, []))
        for task_id, position in tasks.items():
            result[task_id] = estimate(position, intervals)
    return result
