"""The Prometheus collector of the GPU world, read from the database at scrape time.

Every gauge and the timeline's histograms and counters are computed when ``/metrics`` is scraped, from
the rows that are the truth (the same reads the scheduler decides on), so they are right whichever
process serves the scrape and however many web and Celery processes run: nothing is counted in memory.
The histograms and counters are cumulative over the timeline; deleting tasks lowers them, which
Prometheus' ``rate()`` reads as a counter reset.
"""

from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from clusters.models import VirtualCluster
from scheduler.placement import FreeBlocks
from scheduler.selectors import CLUSTER_FIELDS, cluster_states
from tasks.models import Task
from tasks.states import Status

from . import timeline
from .models import WorkerHeartbeat

PREFIX = "deploy_portal"
WAIT_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600, 86400)
DEPLOY_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)

# The failure's words, by their message id, named as a short reason label (anything else: "other").
FAILURE_REASONS = (
    ("vanished", "vanished"),
    ("did not become ready", "timeout"),
    ("cannot be pulled", "image_pull"),
    ("is not valid", "invalid_image"),
    ("OOMKilled", "out_of_memory"),
    ("out of memory", "out_of_memory"),
    ("/dev/shm", "shm_full"),
    ("cannot be scheduled", "unschedulable"),
    ("cannot be created", "container_config"),
    ("cannot be run", "container_config"),
    ("stopped by Kubernetes", "evicted"),
    ("exited with code", "exited"),
    ("killed by signal", "exited"),
)


def failure_reason(msgid):
    """The reason label of a failure whose innermost words have message id ``msgid``."""
    for words, reason in FAILURE_REASONS:
        if words in msgid:
            return reason
    return "other"


def _gauge(name, documentation, labels=("virtual_cluster",)):
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=list(labels))


class GpuWorldCollector:
    """Per VC: SKUs and GPUs (capacity, allocated, free, on unschedulable machines), the largest free block,
    queued and pinned tasks, tasks per state; wait and deploy time histograms; force-start kills;
    failures by reason; each worker's heartbeat age."""

    def collect(self):
        clusters = list(VirtualCluster.objects.order_by("pk").values(*CLUSTER_FIELDS))
        names = {row["id"]: row["name"] for row in clusters}
        states = cluster_states(clusters)
        yield from self._capacity(states)
        yield from self._tasks(names)
        yield from self._histograms(names)
        yield from self._counters(names)
        yield self._heartbeats()

    def _capacity(self, states):
        families = {
            key: _gauge(name, doc)
            for key, name, doc in (
                ("capacity_skus", "vc_capacity_skus", "SKUs of the schedulable machines."),
                ("allocated_skus", "vc_allocated_skus", "SKUs held by deploying and running tasks."),
                ("free_skus", "vc_free_skus", "Free SKUs on schedulable machines."),
                ("unschedulable_skus", "vc_unschedulable_skus", "SKUs of machines taken out of scheduling."),
                ("largest_free_block_skus", "vc_largest_free_block_skus", "The most free SKUs on one machine."),
                ("capacity_gpus", "vc_capacity_gpus", "GPUs of the schedulable machines."),
                ("allocated_gpus", "vc_allocated_gpus", "GPUs held by deploying and running tasks."),
                ("free_gpus", "vc_free_gpus", "Free GPUs on schedulable machines."),
                ("unschedulable_gpus", "vc_unschedulable_gpus", "GPUs of machines taken out of scheduling."),
                ("queued_tasks", "vc_queued_tasks", "Tasks waiting in the queue."),
                ("pinned_tasks", "vc_pinned_tasks", "Tasks pinned to the head of the queue (0 or 1)."),
            )
        }
        for state in states.values():
            blocks = FreeBlocks(state.machines)
            values = {
                "capacity_skus": state.total_skus,
                "allocated_skus": sum(m.used for m in state.machines),
                "free_skus": blocks.total,
                "unschedulable_skus": sum(m.capacity for m in state.machines if not m.schedulable),
                "largest_free_block_skus": blocks.largest()[0],
                "queued_tasks": len(state.queue),
                "pinned_tasks": sum(1 for queued in state.queue if queued.pinned),
            }
            for kind in ("capacity", "allocated", "free", "unschedulable"):
                values[f"{kind}_gpus"] = values[f"{kind}_skus"] * state.sku_gpus
            for key, family in families.items():
                family.add_metric([state.name], values[key])
        return families.values()

    def _tasks(self, names):
        family = _gauge("tasks", "Tasks per virtual cluster and state.", ("virtual_cluster", "state"))
        counts = dict(
            ((vc, status), n)
            for vc, status, n in Task.objects.order_by().values_list("virtual_cluster_id", "status").annotate(n=Count("id"))
        )
        for vc_id, name in names.items():
            for status in Status.values:
                family.add_metric([name, status], counts.get((vc_id, status), 0))
        return [family]

    def _histograms(self, names):
        for stage, bounds, name, doc in (
            ("wait", WAIT_BUCKETS, "task_wait_seconds", "Seconds a task waited in the queue before it was placed."),
            ("deploy", DEPLOY_BUCKETS, "task_deploy_seconds", "Seconds from placement to every instance ready."),
        ):
            family = HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=["virtual_cluster"])
            for vc_id, histogram in timeline.stage_histograms(stage, bounds).items():
                if vc_id not in names:
                    continue
                buckets = [(repr(float(b)), n) for b, n in zip(bounds, histogram.buckets)]
                buckets.append(("+Inf", histogram.buckets[-1]))
                family.add_metric([names[vc_id]], buckets, histogram.sum)
            yield family

    def _counters(self, names):
        kills = CounterMetricFamily(
            f"{PREFIX}_force_start_kills", "Tasks killed to make room for a force start.", labels=["virtual_cluster"]
        )
        killed = timeline.kills_by_cluster()
        for vc_id, name in names.items():
            kills.add_metric([name], killed.get(vc_id, 0))
        yield kills
        failures = CounterMetricFamily(
            f"{PREFIX}_task_failures", "Deploying or running tasks that failed, by reason.",
            labels=["virtual_cluster", "reason"],
        )
        by_reason = {}
        for (vc_id, msgid), n in timeline.failures_by_message().items():
            if vc_id in names:
                key = (names[vc_id], failure_reason(msgid))
                by_reason[key] = by_reason.get(key, 0) + n
        for labels, n in sorted(by_reason.items()):
            failures.add_metric(list(labels), n)
        yield failures

    def _heartbeats(self):
        family = _gauge("worker_heartbeat_age_seconds", "Seconds since each Celery worker last beat.", ("worker",))
        now = timezone.now()
        for worker, seen_at in WorkerHeartbeat.objects.values_list("worker", "seen_at"):
            family.add_metric([worker], max(0.0, (now - seen_at).total_seconds()))
        return family
