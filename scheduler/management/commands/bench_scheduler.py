"""``python manage.py bench_scheduler``: time the scheduling pass on a synthetic cluster in the configured database.

Builds machines (filled by running tasks, leaving one-SKU holes on about a third of them), virtual
clusters of both queue policies (every fifth with a pinned head) and a queue of mixed-size tasks
that the holes cannot take, so every pass decides over the whole queue and the timed passes are
alike. With ``--quotas half`` (the default) every other pair of VCs has quotas for three of its four
projects (one with a borrowing limit) and queued tasks of three priority classes, and half of those VCs
are ``fair_share``; ``--quotas off`` builds none. Reclaim stays off (it would start tasks: the timed passes
would differ). Prints one JSON line:

- ``pass_seconds``: ``schedule_all`` over every benchmark VC (lock, read, decide), median of ``--repeat``;
- ``queries``: the SQL queries of one such pass;
- ``placement_seconds``: the pure decision alone (``plan_queue`` over every VC), median;
- ``select_seconds``: a plain read of the same rows (VCs, machines, held instances, queued tasks), median, with
  Python's collector paused as the pass's reads pause it;
- ``ratio_to_select``: ``pass_seconds / select_seconds``;
- ``calibration_seconds``: a fixed pure-Python loop, median: how fast this machine is right now.

``--scales 1,10`` builds and measures each multiple of ``--nodes/--vcs/--queued`` in turn and prints one
line ``{"calibration_seconds", "scales": [figures of each], "pass_growth": last pass / first pass}``.

Everything happens in one transaction that is rolled back at the end: nothing is left behind, and no
deploy work can be sent (it would only be sent after a commit).
"""

import json
import random
import statistics
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.models import Node, PriorityClass, Project, ProjectQuota, QueuePolicy, VirtualCluster
from scheduler.queues import plan_queue
from scheduler.selectors import CLUSTER_FIELDS, cluster_states, collector_paused
from scheduler.scheduling import schedule_all
from tasks.models import Task, TaskInstance, TaskRun
from tasks.services import bulk_current_runs
from tasks.states import HOLDING, Status

HOLDER_SIZES = (1, 2, 4, 8)
QUEUED_SIZES = (2, 2, 4, 4, 8)  # larger than any hole: the queue waits, fragmented or for capacity
QUEUED_REPLICAS = (1, 1, 1, 2)
PROJECTS = 4
PRIORITIES = (("bench-high", 100), ("bench-normal", 0), ("bench-low", -100))


def analyze():
    """What autovacuum does after a bulk load, for the tables a pass reads: without it the planner, seeing no
    statistics for the rows just made, sorts 100,000 queued tasks that the queue index holds in their order."""
    if connection.vendor != "postgresql":
        return
    tables = ", ".join(
        connection.ops.quote_name(model._meta.db_table)
        for model in (Task, TaskInstance, TaskRun, Node, VirtualCluster, ProjectQuota)
    )
    with connection.cursor() as cursor:
        # Inside the transaction: ANALYZE counts the rows this transaction inserted (VACUUM cannot run here).
        cursor.execute(f"ANALYZE {tables}")


def calibration(repeat=3):
    """The median time of a fixed pure-Python loop (about 0.1 s on a quiet 2020s core)."""
    runs = []
    for _run in range(repeat):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i % 7
        runs.append(time.perf_counter() - started)
    return round(statistics.median(runs), 4)


class Command(BaseCommand):
    help = "Time a full scheduling pass on a synthetic cluster and print one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("--nodes", type=int, default=1000)
        parser.add_argument("--vcs", type=int, default=50)
        parser.add_argument("--queued", type=int, default=10_000)
        parser.add_argument("--sku-capacity", type=int, default=8)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--repeat", type=int, default=5, help="timed runs of each measure; the median is printed")
        parser.add_argument("--quotas", choices=("half", "off"), default="half")
        parser.add_argument("--scales", default=None, help="comma-separated multiples of the sizes, e.g. 1,10")

    def handle(self, *args, **options):
        if options["vcs"] < 1 or options["nodes"] < options["vcs"] or options["sku_capacity"] < 2:
            raise CommandError("Need at least one VC, a machine per VC and machines of 2 SKUs or more.")
        if options["scales"] is None:
            self.stdout.write(json.dumps({**self._one(options), "calibration_seconds": calibration()}))
            return
        try:
            scales = [int(scale) for scale in options["scales"].split(",")]
        except ValueError:
            raise CommandError("--scales takes comma-separated whole numbers, e.g. 1,10.") from None
        if not scales or min(scales) < 1:
            raise CommandError("--scales takes comma-separated whole numbers, e.g. 1,10.")
        figures = [
            self._one({**options, **{key: options[key] * scale for key in ("nodes", "vcs", "queued")}}) for scale in scales
        ]
        self.stdout.write(json.dumps({
            "calibration_seconds": calibration(), "quotas": options["quotas"], "scales": figures,
            "pass_growth": round(figures[-1]["pass_seconds"] / figures[0]["pass_seconds"], 2),
        }))

    def _one(self, options):
        with transaction.atomic():  # the world is made, measured, and rolled back
            vc_ids = self._build(random.Random(options["seed"]), **options)
            analyze()
            result = self._measure(vc_ids, options["repeat"])
            result = {
                "nodes": options["nodes"], "vcs": options["vcs"], "queued": options["queued"],
                "quotas": options["quotas"], **result,
            }
            transaction.set_rollback(True)
        return result

    def _build(self, rng, *, nodes, vcs, queued, sku_capacity, seed, quotas, **_options):
        tag = f"bench-{seed}-{time.time_ns()}"
        owner = get_user_model().objects.create(username=tag[:150])
        projects = Project.objects.bulk_create(Project(name=f"{tag}-p{i}") for i in range(PROJECTS))
        classes = PriorityClass.objects.bulk_create(
            PriorityClass(name=f"{tag}-{name}", value=value) for name, value in PRIORITIES
        )

        def with_quotas(i):
            return quotas == "half" and i % 4 < 2

        def policy(i):
            if with_quotas(i):
                return (QueuePolicy.STRICT_FIFO, QueuePolicy.FAIR_SHARE)[i % 2]
            return (QueuePolicy.STRICT_FIFO, QueuePolicy.BEST_EFFORT_FIFO)[i % 2]

        clusters = VirtualCluster.objects.bulk_create(
            VirtualCluster(name=f"{tag}-vc-{i:03d}", gpu_type="NVIDIA-H100", queue_policy=policy(i))
            for i in range(vcs)
        )
        per_vc = max(1, nodes // vcs) * sku_capacity
        ProjectQuota.objects.bulk_create(
            ProjectQuota(
                virtual_cluster=vc, project=projects[p], guaranteed_skus=per_vc // PROJECTS,
                borrowing_limit=per_vc // PROJECTS if p == 0 else None,
            )
            for i, vc in enumerate(clusters) if with_quotas(i) for p in range(PROJECTS - 1)
        )
        machines = Node.objects.bulk_create(
            Node(
                virtual_cluster=clusters[i % vcs], name=f"{tag}-node-{i:05d}", gpu_type="NVIDIA-H100",
                sku_capacity=sku_capacity,
            )
            for i in range(nodes)
        )
        task_fields = {"owner": owner, "image": "registry.example.com/bench/model:1", "expose_port": False}
        now = timezone.now()
        holders, layout = [], []
        for machine in machines:
            room = sku_capacity - (1 if rng.random() < 1 / 3 else 0)
            while room:
                size = rng.choice([s for s in HOLDER_SIZES if s <= room])
                room -= size
                holders.append(Task(
                    name=f"held-{len(holders)}", virtual_cluster_id=machine.virtual_cluster_id, sku_count=size,
                    status=Status.RUNNING, started_at=now, project=rng.choice(projects), **task_fields,
                ))
                layout.append(machine)
        holders = Task.objects.bulk_create(holders, batch_size=2000)
        runs = bulk_current_runs(holders)
        used = {}
        instances = []
        for task, machine in zip(holders, layout):
            first = used.get(machine.pk, 0)
            used[machine.pk] = first + task.sku_count
            instances.append(TaskInstance(
                task=task, run=runs[task.pk], index=0, node=machine, node_name=machine.name, gpu_type=machine.gpu_type,
                sku_count=task.sku_count, gpu_count=task.sku_count, gpu_indices=list(range(first, first + task.sku_count)),
            ))
        TaskInstance.objects.bulk_create(instances, batch_size=2000)
        waiting = []
        for i in range(queued):
            priority = rng.choice(classes) if with_quotas(i % vcs) else None
            waiting.append(Task(
                name=f"queued-{i}", virtual_cluster=clusters[i % vcs], sku_count=rng.choice(QUEUED_SIZES),
                replicas=rng.choice(QUEUED_REPLICAS), status=Status.QUEUED, project=rng.choice(projects),
                priority_class=priority, priority=priority.value if priority else 0,
                queued_at=now + timedelta(microseconds=i), pinned=i < vcs and i % 5 == 0, **task_fields,
            ))
        bulk_current_runs(Task.objects.bulk_create(waiting, batch_size=2000))
        return [vc.pk for vc in clusters]

    def _measure(self, vc_ids, repeat):
        def timed(func):
            runs = []
            for _run in range(repeat):
                started = time.perf_counter()
                func()
                runs.append(time.perf_counter() - started)
            return statistics.median(runs)

        placed = schedule_all(virtual_cluster_ids=vc_ids)
        if placed:
            raise CommandError(f"The synthetic queue was meant to wait, but {len(placed)} tasks were placed.")
        with CaptureQueriesContext(connection) as context:
            schedule_all(virtual_cluster_ids=vc_ids)
        queries = len(context.captured_queries)
        pass_seconds = timed(lambda: schedule_all(virtual_cluster_ids=vc_ids))

        states = list(cluster_states(VirtualCluster.objects.filter(pk__in=vc_ids).values(*CLUSTER_FIELDS)).values())
        placement_seconds = timed(lambda: [
            plan_queue(machines=s.machines, queue=s.queue, policy=s.queue_policy, quotas=s.quotas, usage=s.usage)
            for s in states
        ])

        def select():
            list(VirtualCluster.objects.filter(pk__in=vc_ids).values_list(*CLUSTER_FIELDS))
            list(Node.objects.filter(virtual_cluster_id__in=vc_ids).values_list(
                "id", "name", "virtual_cluster_id", "sku_capacity", "schedulable", "gpu_type"
            ))
            list(TaskInstance.objects.filter(task__status__in=HOLDING, task__virtual_cluster_id__in=vc_ids).values_list(
                "node_id", "sku_count"
            ))
            list(Task.objects.filter(status=Status.QUEUED, virtual_cluster_id__in=vc_ids).values_list(
                "id", "name", "sku_count", "replicas", "pinned", "expose_port", "external_port", "virtual_cluster_id",
                "project_id", "priority",
            ))

        del states  # the read is timed as the pass's reads run: nothing else held, the collector paused

        def paused_select():
            with collector_paused():
                select()

        select_seconds = timed(paused_select)
        return {
            "pass_seconds": round(pass_seconds, 4),
            "queries": queries,
            "placement_seconds": round(placement_seconds, 4),
            "select_seconds": round(select_seconds, 4),
            "ratio_to_select": round(pass_seconds / select_seconds, 2),
        }
