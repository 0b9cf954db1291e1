"""The benchmark command: one JSON line, a query count that does not grow with the queue, nothing left behind."""

import gc
import json
import random
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext

from clusters.models import Node, VirtualCluster
from scheduler.management.commands.bench_scheduler import Command, analyze
from scheduler.scheduling import schedule_all
from scheduler.selectors import (
    CLUSTER_FIELDS, PASS_READ_SAVEPOINT, PASS_READ_SETTINGS, _planned_for_pass, cluster_states,
)
from tasks.models import Task

pytestmark = pytest.mark.django_db


def bench(**options):
    out = StringIO()
    call_command("bench_scheduler", stdout=out, repeat=1, **options)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_prints_the_figures_with_a_query_count_independent_of_the_queue():
    small = bench(nodes=40, vcs=4, queued=50, seed=3)
    large = bench(nodes=40, vcs=4, queued=800, seed=3)
    assert set(small) == {
        "nodes", "vcs", "queued", "quotas", "pass_seconds", "queries", "placement_seconds", "select_seconds",
        "ratio_to_select", "calibration_seconds",
    }
    assert (large["nodes"], large["vcs"], large["queued"]) == (40, 4, 800)
    assert small["queries"] == large["queries"] <= 8
    assert all(large[key] > 0 for key in ("pass_seconds", "placement_seconds", "select_seconds", "ratio_to_select"))
    assert not Task.objects.exists() and not Node.objects.exists() and not VirtualCluster.objects.exists()


def test_quotas_off_builds_none_and_keeps_the_query_count():
    on, off = bench(nodes=40, vcs=4, queued=200, seed=3), bench(nodes=40, vcs=4, queued=200, seed=3, quotas="off")
    assert (on["quotas"], off["quotas"]) == ("half", "off")
    assert off["queries"] <= on["queries"] <= 8


def test_scales_prints_every_size_from_one_run_with_the_calibration():
    figures = bench(nodes=20, vcs=2, queued=40, seed=3, scales="1,2")
    assert [(f["nodes"], f["vcs"], f["queued"]) for f in figures["scales"]] == [(20, 2, 40), (40, 4, 80)]
    assert figures["calibration_seconds"] > 0
    assert figures["pass_growth"] == round(figures["scales"][1]["pass_seconds"] / figures["scales"][0]["pass_seconds"], 2)
    assert not Task.objects.exists() and not VirtualCluster.objects.exists()


def test_scales_refuses_what_is_not_a_list_of_whole_numbers():
    with pytest.raises(CommandError, match="--scales"):
        bench(scales="1,ten")


def test_bench_reconcile_prints_a_query_count_that_does_not_grow_with_the_holding_tasks():
    def reconcile_bench(**options):
        out = StringIO()
        call_command("bench_reconcile", stdout=out, repeat=1, **options)
        [line] = out.getvalue().splitlines()
        return json.loads(line)

    few, many = reconcile_bench(tasks=5), reconcile_bench(tasks=60, replicas=2)
    assert set(few) == {"holding_tasks", "instances", "queries", "reconcile_seconds", "per_task_ms", "calibration_seconds"}
    assert (many["holding_tasks"], many["instances"]) == (60, 120)
    assert few["queries"] == many["queries"] <= 10
    assert not Task.objects.exists() and not VirtualCluster.objects.exists()


def setting(name):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return cursor.fetchone()[0]


def test_a_pass_reads_the_queues_in_their_index_order_and_leaves_the_planner_settings_as_they_were():
    """The pass's read of 100,000 queued rows was a table scan and a sort (0.19–0.35 s): it reads the queue index
    in order now, under settings that last for that read alone."""
    assert connection.vendor == "postgresql"
    with transaction.atomic():
        vc_ids = Command()._build(random.Random(3), nodes=100, vcs=10, queued=3000, sku_capacity=8, seed=3, quotas="half")
        analyze()
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '8MB'")  # set by someone before the pass: comes back as it was
        before = {name: setting(name) for name, _value in PASS_READ_SETTINGS}
        with CaptureQueriesContext(connection) as context:
            assert schedule_all(virtual_cluster_ids=vc_ids) == []
        assert {name: setting(name) for name in before} == before and before["work_mem"] == "8MB"
        statements = [q["sql"] for q in context.captured_queries]
        [at] = [i for i, sql in enumerate(statements) if '"tasks_task"."queued_at"' in sql]
        assert statements[at - 1].startswith(f"SAVEPOINT {PASS_READ_SAVEPOINT}; SET LOCAL random_page_cost")
        assert statements[at + 1].startswith(f"ROLLBACK TO SAVEPOINT {PASS_READ_SAVEPOINT}")
        with connection.cursor() as cursor, _planned_for_pass(cursor, True):
            cursor.execute(f"EXPLAIN (FORMAT JSON) {statements[at]}")
            plan = cursor.fetchone()[0][0]["Plan"]
        assert (plan["Node Type"], plan.get("Index Name")) == ("Index Scan", "task_queue_idx"), plan
        transaction.set_rollback(True)


def test_a_pass_read_that_fails_says_its_own_error():
    """Not the error of a statement run after it in the aborted transaction."""
    with pytest.raises(DataError, match="division by zero"), transaction.atomic():
        with connection.cursor() as cursor, _planned_for_pass(cursor, True):
            cursor.execute("SELECT 1 / 0")


def test_the_reads_of_a_pass_start_no_collection_and_leave_the_collector_as_it_was():
    """Making 100,000 rows tuples started some 400 collections, two of them full (0.21–0.27 s of a pass)."""
    with transaction.atomic():
        vc_ids = Command()._build(random.Random(3), nodes=100, vcs=10, queued=3000, sku_capacity=8, seed=3, quotas="half")
        clusters = list(VirtualCluster.objects.filter(pk__in=vc_ids).values(*CLUSTER_FIELDS))
        collections = []

        def seen(phase, info):
            if phase == "start":
                collections.append(info["generation"])

        gc.collect()
        gc.callbacks.append(seen)
        try:
            states = cluster_states(clusters, for_pass=True)
        finally:
            gc.callbacks.remove(seen)
        assert sum(len(state.queue) for state in states.values()) == 3000
        assert collections in ([], [0]) and gc.isenabled()  # at most the young one that follows the read
        gc.disable()
        try:
            cluster_states(clusters, for_pass=True)
            assert not gc.isenabled()  # paused by someone else: still paused
        finally:
            gc.enable()
        transaction.set_rollback(True)
