"""``./scripts/run-portal`` under supervisord: Ctrl-C stops what it started, a dead worker comes back,
deployments outlive the portal only as announced."""

import json
import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.embedded.conftest import REPO, pid_alive, session_pids
from tests.live import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PROGRAMS = ("broker", "worker", "beat", "evaluations", "web")


def test_ctrl_c_to_the_process_group_stops_every_process_within_10_seconds(portal):
    wait_until(lambda: all(portal.program_ready(p) for p in PROGRAMS), 20, interval=0.2,
               message=portal.supervisor_log)
    started = session_pids(portal.sid)
    spawned = {pid for program in PROGRAMS for pid in portal.spawned(program)}
    assert spawned <= started  # the supervisor's programs are in run-portal's session
    assert len(started) >= 1 + 1 + len(PROGRAMS)  # run-portal, supervisord, the programs (and their children)

    portal.interrupt()
    began = time.monotonic()
    wait_until(lambda: not session_pids(portal.sid), 10, interval=0.1,
               message=lambda: f"left: {sorted(session_pids(portal.sid))}\n{portal.supervisor_log()[-2000:]}")
    assert time.monotonic() - began < 10
    assert not any(pid_alive(pid) for pid in started)
    assert portal.process.wait(1) == 0
    assert "its processes are gone" in portal.log()


def test_a_killed_deploy_worker_is_restarted_and_deploys_again(portal):
    wait_until(lambda: portal.program_ready("worker"), 20, interval=0.2, message=portal.supervisor_log)
    [first] = portal.spawned("worker")
    os.killpg(first, signal.SIGKILL)  # the worker and its prefork children: a crash
    wait_until(lambda: len(portal.spawned("worker")) == 2, 15, interval=0.1, message=portal.supervisor_log)
    assert "exited: worker (terminated by SIGKILL; not expected)" in portal.supervisor_log()
    assert portal.spawned("worker")[1] != first

    task = portal.task("demo-llm")
    answer = portal.api("POST", f"/tasks/{task['id']}/start/")
    assert answer.status_code in (200, 202), answer.text
    wait_until(lambda: portal.task("demo-llm")["status"] == "running", 45, interval=0.5,
               message=lambda: f"{portal.task('demo-llm')}\n{portal.supervisor_log()[-1500:]}")


@pytest.mark.timeout(150)
def test_deployments_outlive_ctrl_c_are_listed_adopted_and_stopped_by_stop_deployments(portal):
    task = portal.task("demo-llm")
    assert portal.api("POST", f"/tasks/{task['id']}/start/").status_code in (200, 202)
    wait_until(lambda: portal.task("demo-llm")["status"] == "running", 45, interval=0.5)
    data = portal.api("GET", f"/tasks/{task['id']}/instances/").json()
    [instance] = data["results"] if isinstance(data, dict) else data
    # The local runtime's record of the instance's process (what run-portal reads on exit).
    pid = json.loads((portal.var / "local-runtime" / f"{instance['id']}.json").read_text())["pid"]
    assert pid_alive(pid)

    portal.interrupt()
    assert portal.process.wait(15) == 0
    assert pid_alive(pid)  # a deployment keeps running, like a pod when its control plane restarts
    assert f"task {task['id']} instance {instance['id']}: pid {pid}," in portal.log()  # and the user is told

    # The next start adopts it: the task stays running on the same process (reconcile has run meanwhile).
    def reconciles():
        return (portal.var / "log" / "worker.log").read_text(errors="replace").count("Task scheduler.tasks.reconcile[")

    before = reconciles()
    portal.start()
    wait_until(lambda: reconciles() >= before + 2, 30, interval=0.5)
    assert portal.task("demo-llm")["status"] == "running"
    assert pid_alive(pid)
    portal.interrupt()
    assert portal.process.wait(15) == 0

    done = subprocess.run([str(REPO / "scripts/run-portal"), "--stop-deployments"], cwd=REPO, env=portal.env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"stopped task {task['id']} (demo-llm)" in done.stdout
    assert "no deployment is running" in done.stdout
    assert not pid_alive(pid)


def test_a_killed_deploy_worker_raises_the_banner_for_everyone_and_it_goes_when_the_worker_is_back(portal):
    wait_until(lambda: portal.program_ready("worker") and portal.program_ready("beat"), 20, interval=0.2,
               message=portal.supervisor_log)
    wait_until(lambda: "health-banner" not in portal.page("/"), 20, interval=0.5)
    assert portal.api("GET", "/health/").json()["unwell"] == []

    [first] = portal.spawned("worker")
    os.killpg(first, signal.SIGKILL)
    assert portal.supervisorctl("stop", "portal:worker").returncode == 0  # it stays down until started again
    # HEALTH_STALE_SECONDS is 4 here: a member sees the banner, a manager also sees which worker and since when.
    wait_until(lambda: "health-banner" in portal.page("/"), 15, interval=0.5)
    member = portal.page("/")
    assert 'data-unwell="deploy_worker"' in member and "portal@" not in member
    manager = portal.page("/", user="manager", password="manager-pass-123")
    assert 'data-role="deploy_worker"' in manager and "<code>portal@" in manager
    health = portal.api("GET", "/health/", user="manager").json()
    assert health["unwell"] == ["deploy_worker"] and health["ready"] is False
    assert httpx.get(f"{portal.base}/readyz", timeout=10).status_code == 503
    assert httpx.get(f"{portal.base}/healthz", timeout=10).status_code == 200

    assert portal.supervisorctl("start", "portal:worker").returncode == 0
    wait_until(lambda: "health-banner" not in portal.page("/"), 30, interval=0.5)
    assert httpx.get(f"{portal.base}/readyz", timeout=10).json()["status"] == "ready"
