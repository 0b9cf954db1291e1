"""``manage.py bench_api``: one JSON line of figures, query counts that do not grow with the tasks, nothing left behind.

The command builds and drops its own database, so it runs here as the separate process it is.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = "postgres://postgres@127.0.0.1:5432"


def bench(database, tasks, queued):
    env = {**os.environ, "DATABASE_URL": f"{SERVER}/{database}"}
    finished = subprocess.run(
        [sys.executable, "manage.py", "bench_api", "--tasks", str(tasks), "--queued", str(queued), "--requests", "5"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert len(lines) == 1, finished.stdout
    return json.loads(lines[0])


def databases():
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        return {name for (name,) in conn.execute("SELECT datname FROM pg_database")}


@pytest.mark.timeout(600)
def test_prints_the_figures_with_query_counts_independent_of_the_number_of_tasks():
    database = f"bench_probe_{uuid.uuid4().hex[:8]}"
    small = bench(database, tasks=300, queued=30)
    large = bench(database, tasks=1500, queued=120)

    for figures in (small, large):
        assert set(figures["task_list"]) == set(figures["queue"]) == {"p50_ms", "p99_ms", "cpu_p50_ms", "queries"}
        assert 0 < figures["task_list"]["p50_ms"] <= figures["task_list"]["p99_ms"]
        assert 0 < figures["queue"]["p50_ms"] <= figures["queue"]["p99_ms"]
    assert (large["tasks"], large["queued"], large["requests"]) == (1500, 120, 5)
    assert 0 < small["calibration_s"] < 60 and 0 < large["calibration_s"] < 60
    # One count per endpoint across its requests, the same whatever the number of tasks.
    # The task list's 10: the token, the reader's permissions (one query: clusters.backends), the count, the page,
    # its mounts, and for the queued ones' positions the VCs, the held SKUs, the machines, the queues and the
    # reader's projects (scheduler.selectors.hidden_tasks).
    assert small["task_list"]["queries"] == large["task_list"]["queries"] == [10]
    assert small["queue"]["queries"] == large["queue"]["queries"] == [7]
    assert f"bench_api_{database}" not in databases()
