"""A short ``./scripts/bench-log-memory``: reading a whole 40 MB log, through real HTTP into one gunicorn sync
worker, leaves the worker's peak memory where it was (the API view, its download and the portal's download
stream it); a worker that held the log would rise by at least its size."""

import json
import subprocess

import pytest

from tests.embedded.conftest import REPO, free_local_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
MEGABYTES = 40


def test_whole_log_reads_stream_with_flat_memory():
    done = subprocess.run(
        [str(REPO / "scripts/bench-log-memory"), "--megabytes", str(MEGABYTES), "--port", str(free_local_port())],
        cwd=REPO, capture_output=True, text=True, timeout=170,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(lines[0])
    assert result["log_bytes"] >= MEGABYTES * 2**20 - 200
    for way in ("api_view", "api_download", "portal_download"):
        assert result[way]["bytes"] == result["log_bytes"] and result[way]["ends_with_a_line"], way
        assert result[way]["peak_rss_increase_mib"] < MEGABYTES / 4, (way, result[way])
