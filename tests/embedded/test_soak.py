"""A short ``./scripts/soak``: its JSON line counts no crash, stuck task, lost message or orphan."""

import json
import subprocess

import pytest

from tests.embedded.conftest import NODEPORTS, REPO, free_local_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def test_a_short_soak_counts_no_crash_stuck_task_lost_message_or_orphan(tmp_path):
    done = subprocess.run(
        [str(REPO / "scripts/soak"), "--minutes", "0.3", "--lost-seconds", "10", "--stuck-seconds", "60",
         "--gpus", "2", "--tasks", "3", "--port", str(free_local_port()), "--nodeports", NODEPORTS,
         "--tmp", str(tmp_path), "--seed", "7"],
        cwd=REPO, capture_output=True, text=True, timeout=140,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, done.stdout + done.stderr
    result = json.loads(lines[0])
    assert result["operations"] > 10
    assert {key: result[key] for key in ("worker_crashes", "stuck_tasks", "lost_messages", "orphan_processes")} == {
        "worker_crashes": 0, "stuck_tasks": 0, "lost_messages": 0, "orphan_processes": 0,
    }, (result, (tmp_path / result["var_dir"] / "soak.log").read_text()[-3000:])
    assert done.returncode == 0
