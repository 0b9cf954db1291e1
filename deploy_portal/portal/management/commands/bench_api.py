"""``python manage.py bench_api``: the API's list endpoints against a full database, through the WSGI app.

Builds a throwaway PostgreSQL database (``bench_api_<name>``, dropped afterwards) holding ``--tasks``
tasks spread over projects and virtual clusters in every state — some running with their instances,
the newest queued (so the first page asks for queue positions) — then times
``GET /api/v1/tasks/?page_size=50`` and ``GET /api/v1/queue/`` as a project member authenticated by
token, and prints one JSON line: p50 / p99 milliseconds and queries per request, with the time of a fixed
pure-Python loop (``calibration_s``) to compare machines by.
"""

import json
import random
import statistics
import time
from datetime import timedelta
from io import BytesIO
from wsgiref.util import setup_testing_defaults

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection
from django.test.utils import CaptureQueriesContext, setup_databases, teardown_databases
from django.utils import timezone
from rest_framework.authtoken.models import Token

from clusters.models import Node, Project, Storage, StorageKind, VirtualCluster
from tasks.models import InstanceStatus, Task, TaskInstance, TaskMount
from tasks.services import bulk_current_runs
from tasks.states import Status

IDLE_STATES = [Status.NOT_DEPLOYED, Status.STOPPED, Status.FAILED, Status.KILLED]


class Command(BaseCommand):
    help = "Time the task list and the queue through the WSGI app against a throwaway database of many tasks."

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, default=10_000, help="tasks in the database (default 10000)")
        parser.add_argument("--queued", type=int, default=200, help="of which queued (default 200)")
        parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint (default 200)")
        parser.add_argument("--page-size", type=int, default=50, help="page size of the task list (default 50)")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--reconnect", action="store_true",
            help="open a database connection per request, as with DATABASE_CONN_MAX_AGE=0 (the default keeps it)",
        )

    def handle(self, *args, **options):
        if connection.vendor != "postgresql":
            self.stderr.write("bench_api measures PostgreSQL: set DATABASE_URL to a postgres:// URL.")
            return
        test_settings = connection.settings_dict.setdefault("TEST", {})
        test_settings["NAME"] = f"bench_api_{connection.settings_dict['NAME']}"
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
        connection.settings_dict["CONN_MAX_AGE"] = 0 if options["reconnect"] else None
        try:
            token = populate(options["tasks"], options["queued"], random.Random(options["seed"]))
            result = {
                "tasks": options["tasks"], "queued": options["queued"], "requests": options["requests"],
                "persistent_connection": not options["reconnect"],
                # How fast this machine runs plain Python now, so that figures of two machines can be compared.
                "calibration_s": calibration(),
            }
            for name, path in (
                ("task_list", f"/api/v1/tasks/?page_size={options['page_size']}"),
                ("queue", "/api/v1/queue/"),
            ):
                result[name] = measure(path, token, options["requests"])
        finally:
            connection.close()
            teardown_databases(config, verbosity=0)
        self.stdout.write(json.dumps(result))


def calibration():
    """Seconds a fixed pure-Python loop takes here (10⁷ squares summed; the best of three)."""
    best = None
    for _ in range(3):
        started = time.perf_counter()
        sum(i * i for i in range(10_000_000))
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return round(best, 3)


def populate(total, queued, rng):
    """The world: 4 virtual clusters of 16 eight-SKU machines, 10 projects, ``total`` tasks. Returns a token key."""
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"engineer{i}", email=f"engineer{i}@example.com") for i in range(20)
    )
    member = users[0]
    projects = Project.objects.bulk_create(Project(name=f"project-{i}") for i in range(10))
    for project in projects:
        project.members.add(*users[:5] if project.pk % 2 else users)
    clusters = VirtualCluster.objects.bulk_create(
        VirtualCluster(name=f"vc-{i}", gpu_type="NVIDIA-H100") for i in range(4)
    )
    for vc in clusters:
        vc.users.add(*users)
    nodes = Node.objects.bulk_create(
        Node(virtual_cluster=vc, name=f"{vc.name}-node-{n:02d}", gpu_type=vc.gpu_type, sku_capacity=8)
        for vc in clusters for n in range(16)
    )
    storage = Storage.objects.create(name="models", kind=StorageKind.NFS, source="nfs:/models")
    storage.projects.add(*projects)

    now = timezone.now()
    free = {node.pk: node.sku_capacity for node in nodes}
    by_vc = {vc.pk: [n for n in nodes if n.virtual_cluster_id == vc.pk] for vc in clusters}
    tasks, placements = [], []
    for i in range(total):
        vc = clusters[i % len(clusters)]
        sku_count = rng.choice([1, 1, 2, 2, 4, 8])
        status = Status.QUEUED if i >= total - queued else rng.choice(IDLE_STATES)
        node = None
        if status != Status.QUEUED and rng.random() < 0.1:
            node = next((n for n in by_vc[vc.pk] if free[n.pk] >= sku_count), None)
            if node is not None:
                free[node.pk] -= sku_count
                status = Status.RUNNING
        tasks.append(Task(
            name=f"model-{i:05d}", project=projects[i % len(projects)], image="registry.example.com/llm/vllm:0.6.0",
            virtual_cluster=vc, sku_count=sku_count, container_port=8000, owner=users[i % len(users)],
            env=[{"name": "SHM_SIZE", "value": "60G"}], status=status,
            queued_at=now - timedelta(seconds=total - i) if status == Status.QUEUED else None,
            started_at=now if status == Status.RUNNING else None,
            endpoint_port=30000 + len(placements) if node is not None else None,
        ))
        if node is not None:
            placements.append((i, node))
    tasks = Task.objects.bulk_create(tasks, batch_size=2000)
    TaskMount.objects.bulk_create(
        (TaskMount(task=task, storage=storage, mount_path="/models") for task in tasks), batch_size=2000
    )
    runs = bulk_current_runs(tasks)
    TaskInstance.objects.bulk_create(
        TaskInstance(
            task=tasks[i], run=runs[tasks[i].pk], index=0, node=node, node_name=node.name, gpu_type=node.gpu_type,
            sku_count=tasks[i].sku_count, gpu_count=tasks[i].sku_count, status=InstanceStatus.READY,
        )
        for i, node in placements
    )
    with connection.cursor() as cursor:
        # What autovacuum does after a bulk load: statistics, and the visibility map index-only scans need.
        cursor.execute("VACUUM ANALYZE")
    return Token.objects.create(user=member).key


def call(path, token):
    """One GET through the WSGI application; returns the status and the body."""
    # Loaded on the first request, as a server loads it: its gc.freeze() then covers the app as a server holds it.
    from deploy_portal.wsgi import application

    route, _, query = path.partition("?")
    environ = {"PATH_INFO": route, "QUERY_STRING": query, "HTTP_AUTHORIZATION": f"Token {token}",
               "HTTP_ACCEPT": "application/json", "wsgi.input": BytesIO()}
    setup_testing_defaults(environ)
    answered = {}

    def start_response(status, headers, exc_info=None):
        answered["status"] = int(status.split()[0])

    body = b"".join(application(environ, start_response))
    return answered["status"], body


def measure(path, token, requests):
    for _ in range(10):  # warm: imports, caches, the connection
        status, body = call(path, token)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
    queries = set()
    for _ in range(5):  # counted apart: capturing SQL is not part of a request's cost
        with CaptureQueriesContext(connection) as captured:
            call(path, token)
        queries.add(len(captured.captured_queries))
    timings, cpu = [], []
    for _ in range(requests):
        started, started_cpu = time.perf_counter(), time.process_time()
        call(path, token)
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    timings.sort()
    return {
        "p50_ms": round(statistics.median(timings), 2),
        "p99_ms": round(timings[min(len(timings) - 1, int(len(timings) * 0.99))], 2),
        # This process's CPU per request (the database's is not in it): steadier than wall time on a busy machine.
        "cpu_p50_ms": round(statistics.median(cpu), 2),
        "queries": sorted(queries),
    }
