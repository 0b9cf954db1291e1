"""A short ``./scripts/bench-gateway``: the same streaming load straight to a demo model server and through a real
gateway process (``manage.py run_gateway``, with an API key) answers every request on both sides, and the one JSON
line says what it measured. No timing is asserted: speed is shown by the benchmark, not by a timed test."""

import json
import subprocess

import pytest

from tests.demo_model.process import REPO_ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
STREAMS, REQUESTS, ROUNDS = 8, 40, 1
FIGURES = ("rps", "tokens_per_s", "ttft_p50_ms", "ttft_p99_ms")


def test_direct_and_through_the_gateway_answer_every_request():
    done = subprocess.run(
        [str(REPO_ROOT / "scripts/bench-gateway"), "--streams", str(STREAMS), "--requests", str(REQUESTS),
         "--rounds", str(ROUNDS), "--max-tokens", "8", "--token-delay", "0.005", "--port", str(free_port())],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=110,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(lines[0])
    assert result["streams"] == STREAMS
    for key in ("added_ttft_p50_ms", "added_ttft_p99_ms", "throughput_ratio", "calibration_seconds"):
        assert isinstance(result[key], float), key
    for side in ("direct", "gateway"):
        figures = result[side]
        assert figures["errors"] == 0 and figures["completed"] == REQUESTS * ROUNDS, (side, figures)
        assert all(isinstance(figures[name], float) and figures[name] > 0 for name in FIGURES), (side, figures)
