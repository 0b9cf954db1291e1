"""The embedded stack as users run it: ``./scripts/run-portal`` in a session of its own, on a var dir,
a SQLite database, a portal port and task ports of its own (so it never meets another stack)."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.live import wait_until

REPO = Path(__file__).resolve().parents[2]
# Task ports for these tests: away from the shared 30000-32767 and from scripts/soak's default.
NODEPORTS = os.environ.get("EMBEDDED_NODEPORT_RANGE", "33000-33199")


def free_local_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_pids(sid):
    """Live (not zombie) processes of session ``sid``, read from /proc."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X") and int(fields[3]) == sid:
            pids.add(int(entry))
    return pids


def pid_alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X")


class Portal:
    def __init__(self, root):
        self.var = root / "var"
        self.port = free_local_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "run-portal.log"
        self.env = {
            **os.environ,
            "DEPLOY_VAR_DIR": str(self.var),
            "DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}",
            "PORTAL_ADDR": f"127.0.0.1:{self.port}",
            "GATEWAY_ADDR": f"127.0.0.1:{free_local_port()}",
            "NODEPORT_RANGE": NODEPORTS,
            "LOCAL_GPU_COUNT": "2",
            "LOCAL_RUNTIME_DIR": str(self.var / "local-runtime"),
            "LOCAL_STOP_GRACE_SECONDS": "2",
            "RECONCILE_INTERVAL_SECONDS": "2",
            "HEARTBEAT_INTERVAL_SECONDS": "1",
            "HEALTH_STALE_SECONDS": "4",
            "PYTHONUNBUFFERED": "1",
        }
        for name in ("CELERY_BROKER_URL", "DEPLOY_RUNTIME", "CELERY_TASK_DEFAULT_QUEUE", "EVALUATIONS_QUEUE"):
            self.env.pop(name, None)
        self.process = None
        self.tokens = {}

    def start(self, timeout=50):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([str(REPO / "scripts/run-portal")], cwd=REPO, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.sid = self.process.pid
        wait_until(lambda: self.process.poll() is not None or self._token("demo", "demo-pass-123"), timeout,
                   interval=0.3, message=lambda: self.log()[-3000:])
        assert self.process.poll() is None, self.log()[-3000:]
        self._token("manager", "manager-pass-123")
        return self

    def _token(self, user, password):
        try:
            answer = httpx.post(f"{self.base}/api/v1/auth/token/", data={"username": user, "password": password}, timeout=5)
        except httpx.HTTPError:
            return False
        if answer.status_code != 200:
            return False
        self.tokens[user] = answer.json()["token"]
        return True

    def api(self, method, path, user="demo", **kw):
        return httpx.request(method, f"{self.base}/api/v1{path}", headers={"Authorization": f"Token {self.tokens[user]}"},
                             timeout=30, **kw)

    def page(self, path, user="demo", password="demo-pass-123"):
        """A portal page's HTML as ``user`` sees it (logged in through the login form)."""
        with httpx.Client(base_url=self.base, timeout=30) as client:
            client.get("/accounts/login/")
            client.post("/accounts/login/", data={
                "username": user, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"],
            }, headers={"Referer": f"{self.base}/accounts/login/"})
            answer = client.get(path)
            answer.raise_for_status()
            return answer.text

    def supervisorctl(self, *args):
        return subprocess.run([str(REPO / ".venv/bin/supervisorctl"), "-c", str(self.var / "supervisord.conf"), *args],
                              capture_output=True, text=True, timeout=30)

    def task(self, name):
        answer = self.api("GET", "/tasks/", params={"page_size": 100})
        answer.raise_for_status()
        return next(t for t in answer.json()["results"] if t["name"] == name)

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def supervisor_log(self):
        path = self.var / "log" / "supervisord.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def spawned(self, program):
        """The pids supervisord logged for ``program``'s spawns, in order."""
        return [int(pid) for pid in re.findall(rf"spawned: '{program}' with pid (\d+)", self.supervisor_log())]

    def program_ready(self, program):
        return f"success: {program} entered RUNNING state" in self.supervisor_log()

    def interrupt(self):
        """A terminal's Ctrl-C: SIGINT to the whole process group."""
        os.killpg(self.sid, signal.SIGINT)

    def cleanup(self):
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.sid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(20)
        if self.process is not None:
            subprocess.run([str(REPO / "scripts/run-portal"), "--stop-deployments"], cwd=REPO, env=self.env,
                           capture_output=True, timeout=60)
            for pid in session_pids(self.sid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def portal(tmp_path):
    """A started ``./scripts/run-portal`` (not yet stopped); whatever it left is stopped afterwards."""
    stack = Portal(tmp_path)
    try:
        yield stack.start()
    finally:
        stack.cleanup()
