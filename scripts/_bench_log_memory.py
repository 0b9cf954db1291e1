"""What reading a big log costs the web worker's memory; prints ONE JSON line. Run it as ``scripts/bench-log-memory``.

    ./scripts/bench-log-memory [--megabytes 200] [--port 8170]

In a throwaway directory (its own SQLite database and local-runtime dir) it makes one running task whose
instance's live log (the local runtime's log file) holds --megabytes of text, then, for each way of reading
the whole log, starts gunicorn with ONE sync worker (as in production), warms the worker with a 10-line tail
of the same log, reads the worker's peak resident memory (``VmHWM``), sends the request through real HTTP
(the answer read and counted in 64 KiB pieces, never held), and reads the peak again:

- ``api_view``: ``GET /api/v1/instances/<id>/logs/`` (the whole log, token auth);
- ``api_download``: the same with ``?download=1``;
- ``portal_download``: ``GET /instances/<id>/log/download/`` (a logged-in session);
- ``portal_tail_100000``: the portal's largest view, ``/instances/<id>/log/?tail=100000``.

Each figure is ``{"bytes": answered, "peak_rss_increase_mib": the peak's rise during the request}``. A
worker that held the log would rise by about the log's size or more; streaming keeps the rise flat
whatever the size. ``calibration_seconds``: bench_scheduler's fixed pure-Python loop. Exits 1 when an
answer is not the whole log (or the tail), so CI can run a short version (``--megabytes 40``).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LINE = b"2026-12-03T06:00:00Z INFO served a request in 12 ms: POST /v1/chat/completions 200 (tokens 128)\n"

SETUP = """
import json, sys
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
from rest_framework.authtoken.models import Token
from clusters.models import Node, Project, VirtualCluster
from tasks.models import InstanceStatus, Task, TaskInstance
from tasks.services import bulk_current_runs
from tasks.states import Status

user = get_user_model().objects.create_user("reader", password="unused-password-1")
project = Project.objects.create(name="logs")
project.members.add(user)
vc = VirtualCluster.objects.create(name="logs-vc", gpu_type="NVIDIA-H100", sku_gpus=1, sku_cpus=12, sku_memory_gib=120)
node = Node.objects.create(name="logs-node", virtual_cluster=vc, gpu_type="NVIDIA-H100", sku_capacity=8)
task = Task.objects.create(
    name="big-log", project=project, virtual_cluster=vc, owner=user, image="registry.example.com/llm/demo:1",
    status=Status.RUNNING,
)
run = bulk_current_runs([task])[task.pk]
instance = TaskInstance.objects.create(
    task=task, run=run, index=0, node=node, node_name=node.name, gpu_type=node.gpu_type, sku_count=1, gpu_count=1,
    gpu_indices=[0], status=InstanceStatus.READY, handle="1",
)
session = SessionStore()
session[SESSION_KEY], session[BACKEND_SESSION_KEY] = str(user.pk), "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(json.dumps({"instance": instance.pk, "token": Token.objects.create(user=user).key,
                  "session": session.session_key}))
"""


def peak_rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


def worker_pid(master):
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one gunicorn worker, found {children}")
    return int(children[0])


def wait_for(url, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def fetch(url, headers):
    """GET ``url``, reading the answer in pieces: (status, bytes, the last line)."""
    size, last = 0, b""
    with httpx.stream("GET", url, headers=headers, timeout=300) as response:
        for piece in response.iter_bytes(64 * 1024):
            size += len(piece)
            last = (last + piece)[-256:]
        return response.status_code, size, last


def measure(env, port, path, warm, headers):
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "deploy_portal.wsgi", "--workers", "1", "--worker-class", "sync",
         "--bind", f"127.0.0.1:{port}", "--timeout", "300", "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    try:
        wait_for(f"{base}/healthz")
        status, _size, _last = fetch(base + warm, headers)
        if status != 200:
            raise RuntimeError(f"warm-up {warm} answered {status}")
        worker = worker_pid(server.pid)
        before = peak_rss_kib(worker)
        status, size, last = fetch(base + path, headers)
        after = peak_rss_kib(worker)
        return {"status": status, "bytes": size, "ends_with_a_line": last.endswith(LINE),
                "peak_rss_increase_mib": round((after - before) / 1024, 1), "worker_peak_rss_mib": round(after / 1024, 1)}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--port", type=int, default=8170)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dp-log-bench-") as tmp:
        tmp = Path(tmp)
        env = {
            **os.environ, "DEBUG": "false", "SECRET_KEY": "bench-log-memory-" + "x" * 40, "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}", "DEPLOY_VAR_DIR": str(tmp / "var"),
            "LOCAL_RUNTIME_DIR": str(tmp / "local"), "DEPLOY_RUNTIME": "local", "CELERY_BROKER_URL": "memory://",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # an empty one would make prometheus_client write into the cwd
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
        made = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True,
            text=True,
        )
        world = json.loads(made.stdout.strip().splitlines()[-1])
        log = tmp / "local" / f"{world['instance']}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        lines = options.megabytes * 2**20 // len(LINE)
        block = LINE * 10_000
        with open(log, "wb") as out:
            for _ in range(lines // 10_000):
                out.write(block)
            out.write(LINE * (lines % 10_000))
        size = log.stat().st_size

        instance = world["instance"]
        token = {"Authorization": f"Token {world['token']}"}
        session = {"Cookie": f"sessionid={world['session']}"}
        api = f"/api/v1/instances/{instance}/logs/"
        portal_tail = f"/instances/{instance}/log/?tail="
        figures = {
            "api_view": measure(env, options.port, api, f"{api}?tail=10", token),
            "api_download": measure(env, options.port, f"{api}?download=1", f"{api}?tail=10", token),
            "portal_download": measure(env, options.port, f"/instances/{instance}/log/download/",
                                       f"{portal_tail}10", session),
            "portal_tail_100000": measure(env, options.port, f"{portal_tail}100000", f"{portal_tail}10", session),
        }
        # The machine's speed, by the loop every benchmark here prints (it lives with bench_scheduler).
        sys.path.insert(0, str(ROOT))
        os.environ.update(env, DJANGO_SETTINGS_MODULE="deploy_portal.settings")
        import django

        django.setup()
        from scheduler.management.commands.bench_scheduler import calibration
    whole = all(figures[k]["status"] == 200 and figures[k]["bytes"] == size for k in ("api_view", "api_download", "portal_download"))
    tail = figures["portal_tail_100000"]
    whole = whole and tail["status"] == 200 and tail["bytes"] == 100_000 * len(LINE)
    print(json.dumps({"log_bytes": size, **figures, "calibration_seconds": calibration()}))
    return 0 if whole else 1


if __name__ == "__main__":
    sys.exit(main())
