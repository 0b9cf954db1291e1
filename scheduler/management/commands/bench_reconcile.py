"""The cost of one reconcile pass over N holding tasks, the runtime's own I/O left out: prints one JSON line.

    python manage.py bench_reconcile [--tasks 1000] [--replicas 1] [--repeat 5]

Builds N running tasks (each with its current run and ``--replicas`` ready instances) in a throwaway VC,
installs a runtime that answers from memory (every instance ready, no stray workload) in place of the
configured one, runs one pass to settle, then times ``--repeat`` passes of ``scheduler.jobs.reconcile`` and
counts their queries. Everything is rolled back. The figures: ``reconcile_seconds`` (median),
``per_task_ms``, ``queries`` (the same whatever N: the pass reads every holding task, run and instance in a
few queries and writes only what changed) and ``calibration_seconds`` (bench_scheduler's fixed loop).
"""

import json
import statistics
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.models import Node, Project, VirtualCluster
from scheduler import jobs
from scheduler.runtimes import _runtimes
from scheduler.runtimes.base import InstanceObservation, Runtime
from tasks.models import InstanceStatus, Task, TaskInstance
from tasks.services import bulk_current_runs
from tasks.states import Status

from .bench_scheduler import calibration

SKUS_PER_MACHINE = 8


class ReadyRuntime(Runtime):
    """Every instance ready, nothing else running: what a steady world looks like to reconcile."""

    def __init__(self):
        self.observed = 0

    def apply(self, run):
        pass

    def observe(self, run, snapshot=None):
        self.observed += 1
        return [InstanceObservation(index=i.index, status=InstanceStatus.READY) for i in run.instances.all()]

    def teardown(self, run):
        pass

    def workloads(self):
        return []

    def remove_workload(self, workload):
        pass

    def read_log(self, instance, tail=None):
        raise LookupError(instance.pk)

    def open_log(self, instance):
        raise LookupError(instance.pk)

    def log_tail_bytes(self, instance, limit):
        raise LookupError(instance.pk)


class Command(BaseCommand):
    help = "Time reconcile over N running tasks (runtime I/O left out) and print one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, default=1000)
        parser.add_argument("--replicas", type=int, default=1)
        parser.add_argument("--repeat", type=int, default=5)

    def handle(self, *args, tasks, replicas, repeat, **options):
        if tasks < 1 or replicas < 1 or repeat < 1:
            raise CommandError("--tasks, --replicas and --repeat must be 1 or more.")
        key = ("local", str(settings.LOCAL_RUNTIME_DIR))
        previous_runtime, previous_setting = _runtimes.get(key), settings.DEPLOY_RUNTIME
        runtime = ReadyRuntime()
        settings.DEPLOY_RUNTIME, _runtimes[key] = "local", runtime
        try:
            with transaction.atomic():  # the world is made, measured, and rolled back
                self._build(tasks, replicas)
                jobs.reconcile()  # settles what the instance rows say
                times, queries = [], set()
                for _ in range(repeat):
                    runtime.observed = 0
                    with CaptureQueriesContext(connection) as captured:
                        started = time.perf_counter()
                        done = jobs.reconcile()
                        times.append(time.perf_counter() - started)
                    if len(done["observed"]) != tasks or runtime.observed != tasks or done["failed"]:
                        raise CommandError(f"the pass did not observe every task as ready: {done}")
                    queries.add(len(captured.captured_queries))
                transaction.set_rollback(True)
        finally:
            settings.DEPLOY_RUNTIME = previous_setting
            if previous_runtime is None:
                _runtimes.pop(key, None)
            else:
                _runtimes[key] = previous_runtime
        seconds = statistics.median(times)
        self.stdout.write(json.dumps({
            "holding_tasks": tasks, "instances": tasks * replicas, "queries": max(queries),
            "reconcile_seconds": round(seconds, 4), "per_task_ms": round(seconds / tasks * 1000, 3),
            "calibration_seconds": calibration(),
        }))

    def _build(self, count, replicas):
        tag = f"bench-reconcile-{time.time_ns()}"
        owner = get_user_model().objects.create(username=tag[:150])
        vc = VirtualCluster.objects.create(name=tag, gpu_type="NVIDIA-H100")
        project = Project.objects.create(name=tag)
        machines = Node.objects.bulk_create(
            Node(virtual_cluster=vc, name=f"{tag}-{i:05d}", gpu_type="NVIDIA-H100", sku_capacity=SKUS_PER_MACHINE)
            for i in range(-(-count * replicas // SKUS_PER_MACHINE))
        )
        now = timezone.now()
        holders = Task.objects.bulk_create(
            [Task(name=f"held-{i}", virtual_cluster=vc, sku_count=1, replicas=replicas, status=Status.RUNNING,
                  started_at=now, owner=owner, project=project, image="registry.example.com/bench/model:1", expose_port=False)
             for i in range(count)],
            batch_size=2000,
        )
        runs = bulk_current_runs(holders)
        instances = []
        for slot, (task, index) in enumerate((task, index) for task in holders for index in range(replicas)):
            machine = machines[slot // SKUS_PER_MACHINE]
            instances.append(TaskInstance(
                task=task, run=runs[task.pk], index=index, node=machine, node_name=machine.name,
                gpu_type=machine.gpu_type, sku_count=1, gpu_count=1, gpu_indices=[slot % SKUS_PER_MACHINE],
                status=InstanceStatus.READY, ready_at=now, handle=f"bench-{slot}",
            ))
        TaskInstance.objects.bulk_create(instances, batch_size=2000)
