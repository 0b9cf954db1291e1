"""The benchmark command: one JSON line, a query count that does not grow with the queue, nothing left behind."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from clusters.models import Node, VirtualCluster
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
