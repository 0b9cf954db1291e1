"""The benchmark command: one JSON line, a query count that does not grow with the queue, nothing left behind."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

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
        "nodes", "vcs", "queued", "pass_seconds", "queries", "placement_seconds", "select_seconds", "ratio_to_select",
    }
    assert (large["nodes"], large["vcs"], large["queued"]) == (40, 4, 800)
    assert small["queries"] == large["queries"] <= 8
    assert all(large[key] > 0 for key in ("pass_seconds", "placement_seconds", "select_seconds", "ratio_to_select"))
    assert not Task.objects.exists() and not Node.objects.exists() and not VirtualCluster.objects.exists()
