"""``python manage.py bench_history``: the utilisation and GPU-hours pages over a generated month, on PostgreSQL.

Generates ``--days`` of minute samples (``--vcs`` VCs, each with ``--projects`` projects of ``--users``
users holding GPUs every minute), sums them with plain SQL (the raw truth), rolls them up as beat
does (hourly rows for every hour, minutes kept for the last week), then times the pages a manager opens and compares their numbers
with the raw sums. Prints one JSON line:

- ``samples``: minute rows generated; ``rows_after_compaction``;
- ``utilisation_page_seconds``: GET of a VC's utilisation page over 30 days, median of ``--repeat``;
- ``gpu_hours_page_seconds`` / ``gpu_hours_csv_seconds``: GET of the GPU-hours page / its CSV for the whole period;
- ``gpu_hours_equal``: the page's GPU-hours per project and per user equal the raw sums (and ``gpu_hours_total``);
- ``calibration_seconds``: a fixed pure-Python loop, to compare machines.

Everything happens in one transaction that is rolled back at the end: nothing is left behind.
"""

import json
import statistics
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from clusters.models import Project, VirtualCluster
from observability import selectors, services
from observability.models import AllocationSample, ClusterSample


def _calibration():
    started = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i % 7
    return time.perf_counter() - started


def _median(repeat, fn):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _raw(by, since, until):
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {by}_id, SUM(gpu_seconds) FROM observability_allocationsample WHERE at >= %s AND at < %s GROUP BY 1",
            [since, until],
        )
        return {key: int(seconds) for key, seconds in cursor.fetchall()}


class Command(BaseCommand):
    help = "Time the utilisation and GPU-hours pages over a generated month of samples and print one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--vcs", type=int, default=2)
        parser.add_argument("--projects", type=int, default=6, help="projects per VC")
        parser.add_argument("--users", type=int, default=2, help="users per project")
        parser.add_argument("--repeat", type=int, default=5)

    def handle(self, *args, **options):
        if connection.vendor != "postgresql":
            raise CommandError("The benchmark generates its samples with PostgreSQL's generate_series.")
        if min(options["days"], options["vcs"], options["projects"], options["users"], options["repeat"]) < 1:
            raise CommandError("Every count must be at least 1.")
        with transaction.atomic():  # the world is made, measured, and rolled back
            result = self._run(**options)
            transaction.set_rollback(True)
        self.stdout.write(json.dumps(result, sort_keys=True))

    def _world(self, vcs, projects, users):
        combos = []
        user_model = get_user_model()
        for v in range(vcs):
            vc = VirtualCluster.objects.create(name=f"bench-history-{v}", gpu_type="H100")
            for p in range(projects):
                project = Project.objects.create(name=f"bench-history-{v}-{p}")
                for u in range(users):
                    owner = user_model.objects.create(username=f"bench-history-{v}-{p}-{u}")
                    combos.append((vc.pk, project.pk, owner.pk, len(combos)))
        return combos

    def _generate(self, combos, start, end):
        columns = list(zip(*combos))
        with connection.cursor() as cursor:
            # Each holder holds 0–4 GPUs, changing every minute, deterministically.
            cursor.execute(
                """
                INSERT INTO observability_allocationsample (virtual_cluster_id, project_id, owner_id, at, span_seconds, gpu_seconds)
                SELECT c.vc, c.project, c.owner, ts, 60, (((EXTRACT(EPOCH FROM ts)::bigint / 60) * 7 + c.n * 13) %% 5) * 60
                FROM generate_series(%s::timestamptz, %s::timestamptz, interval '1 minute') ts,
                     unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::int[]) AS c(vc, project, owner, n)
                """,
                [start, end - timedelta(minutes=1), list(columns[0]), list(columns[1]), list(columns[2]), list(columns[3])],
            )
            cursor.execute(
                """
                INSERT INTO observability_clustersample (virtual_cluster_id, at, span_seconds, total_gpu_seconds,
                                                         allocated_gpu_seconds, queued_task_seconds)
                SELECT virtual_cluster_id, at, 60, %s * 60, SUM(gpu_seconds), ((EXTRACT(EPOCH FROM at)::bigint / 60) %% 4) * 60
                FROM observability_allocationsample WHERE at >= %s AND at < %s GROUP BY virtual_cluster_id, at
                """,
                [len(combos) * 4, start, end],
            )

    def _run(self, *, days, vcs, projects, users, repeat, **_options):
        end = timezone.now().replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(days=days)
        combos = self._world(vcs, projects, users)
        self._generate(combos, start, end)
        samples = AllocationSample.objects.count() + ClusterSample.objects.count()
        raw = {by: _raw(by, start, end) for by in ("project", "owner")}
        services.samples_compact(now=end + services.SETTLE)
        with connection.cursor() as cursor:  # autovacuum would have, in a month of sampling
            cursor.execute("ANALYZE observability_allocationsample")
            cursor.execute("ANALYZE observability_clustersample")
        compacted = AllocationSample.objects.count() + ClusterSample.objects.count()

        manager = get_user_model().objects.create(username="bench-history-manager", is_superuser=True, is_staff=True)
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        client.force_login(manager)
        vc_id = combos[0][0]
        zone = timezone.get_current_timezone()
        period = {"since": start.astimezone(zone).date().isoformat(), "until": (end.astimezone(zone) - timedelta(seconds=1)).date().isoformat()}

        def get(url, **params):
            response = client.get(url, params)
            if response.status_code != 200:
                raise CommandError(f"{url} answered {response.status_code}")
            return response

        page = {"seconds": _median(repeat, lambda: get(f"/virtual-clusters/{vc_id}/utilisation/", range="30d"))}
        gpu_hours_page = _median(repeat, lambda: get("/gpu-hours/", **period))
        csv_seconds = _median(repeat, lambda: get("/gpu-hours/", format="csv", **period))

        shown = {
            by: {row["id"]: round(row["gpu_hours"] * 3600) for row in selectors.gpu_hours(since=start, until=end, by=by)}
            for by in ("project", "owner")
        }
        return {
            "days": days, "vcs": vcs, "holders": len(combos), "samples": samples, "rows_after_compaction": compacted,
            "utilisation_page_seconds": round(page["seconds"], 4),
            "gpu_hours_page_seconds": round(gpu_hours_page, 4),
            "gpu_hours_csv_seconds": round(csv_seconds, 4),
            "gpu_hours_equal": shown == raw,
            "gpu_hours_total": round(sum(raw["project"].values()) / 3600, 3),
            "calibration_seconds": round(_calibration(), 4),
        }
