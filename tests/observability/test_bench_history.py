"""The history benchmark: one JSON line, the pages' GPU-hours equal to the raw samples summed by SQL, nothing left behind."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from clusters.models import Project, VirtualCluster
from observability.models import AllocationSample, ClusterSample

pytestmark = pytest.mark.django_db


def test_prints_the_timings_and_the_same_gpu_hours_as_the_raw_samples():
    out = StringIO()
    call_command("bench_history", days=9, vcs=2, projects=2, users=1, repeat=1, stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["gpu_hours_equal"] is True
    assert result["samples"] == 9 * 24 * 60 * (4 + 2)  # four holders and two VCs, every minute
    assert result["rows_after_compaction"] == 9 * 24 * 6 + 7 * 24 * 60 * 6  # every hour rolled up; a week of minutes
    assert result["gpu_hours_total"] > 0
    assert all(result[key] > 0 for key in ("utilisation_page_seconds", "gpu_hours_page_seconds", "calibration_seconds"))
    assert not (AllocationSample.objects.exists() or ClusterSample.objects.exists() or VirtualCluster.objects.exists())
    assert not Project.objects.exists()
