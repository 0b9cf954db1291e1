"""Live-stack pytest fixtures: a real Celery worker on Redis against the test database, the local runtime.

Use them in a test module with ``from tests.live import *  # noqa: F403`` (or import the names),
and mark the tests ``@pytest.mark.integration`` and ``@pytest.mark.django_db(transaction=True)``:
the worker is another process, so it sees only committed rows.

Fixtures
- ``live_stack`` — a ``LiveStack``: points this process's Celery app at Redis (``LIVE_REDIS_URL``,
  default ``redis://127.0.0.1:6379/1``) on a queue of its own (so concurrent runs never take each
  other's messages), configures the local runtime in a temporary ``LOCAL_RUNTIME_DIR`` shared with
  the worker, and restores everything afterwards. Its ``env`` is what a worker gets.
- ``live_worker`` — a started ``LiveWorker`` (``celery worker --pool=solo -B``: embedded beat, so
  reconcile runs every second and the scheduling pass every 5 s). ``stop()`` (SIGTERM),
  ``kill()`` (SIGKILL, as a crash), ``start()`` (again), ``log()`` (its output, for messages).
  On teardown it is stopped and every local instance process left behind is removed.

Helpers
- ``wait_until(predicate, timeout, interval)`` polls until ``predicate()`` is truthy and answers
  it, or fails with the last value; never sleep-and-hope.
- ``free_port()`` a free TCP port on 127.0.0.1 (inside ``settings.NODEPORT_RANGE``, set from the
  environment, as the shared machine asks).

Environment: ``LIVE_REDIS_URL``; ``NODEPORT_RANGE`` (the ports tasks get; e.g. ``31000-31399``).
The pytest-django ``live_server`` fixture combines with these for portal tests in a browser.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection
from kombu import pools as kombu_pools

__all__ = ["LiveStack", "LiveWorker", "free_port", "live_stack", "live_worker", "wait_until"]

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("LIVE_REDIS_URL", "redis://127.0.0.1:6379/1")


def wait_until(predicate, timeout=10.0, interval=0.05, message=None):
    """Poll ``predicate`` until it answers something truthy (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = message() if callable(message) else message
            pytest.fail(f"condition not met within {timeout}s (last value: {value!r}){': ' + detail if detail else ''}")
        time.sleep(interval)


def _port_free(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port():
    """A free port on 127.0.0.1 inside ``settings.NODEPORT_RANGE`` (so it is valid as a task's external port)."""
    from django.conf import settings

    low, high = settings.NODEPORT_RANGE
    for port in range(low + os.getpid() % 50, high + 1):
        if _port_free(port):
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def _database_url():
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class LiveStack:
    def __init__(self, root):
        self.root = Path(root)
        self.queue = f"live-{uuid.uuid4().hex[:12]}"
        self.evaluations_queue = f"{self.queue}-evaluations"  # as settings derive it from the default queue
        self.runtime_dir = self.root / "local-runtime"
        self.env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": REDIS_URL,
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "DEPLOY_RUNTIME": "local",
            "DEPLOY_VAR_DIR": str(self.root / "var"),
            "LOCAL_RUNTIME_DIR": str(self.runtime_dir),
            "LOCAL_STOP_GRACE_SECONDS": "3",
            "RECONCILE_INTERVAL_SECONDS": "1",
            "SCHEDULE_INTERVAL_SECONDS": "5",
            "DEPLOY_TIMEOUT_SECONDS": os.environ.get("LIVE_DEPLOY_TIMEOUT_SECONDS", "60"),
            "PYTHONUNBUFFERED": "1",
        }

    def kill_instances(self):
        """Kill what a test left running (a failed one does not stop its tasks): the next test needs the ports."""
        from scheduler.runtimes.local.records import RecordStore, group_alive

        for record in RecordStore(self.runtime_dir).all():
            if group_alive(record):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(record.pid, signal.SIGKILL)


def _point_celery_at(app, broker_url, queue):
    """Send this process's Celery messages to ``broker_url``, on ``queue`` (evaluations on ``<queue>-evaluations``,
    as settings route them); verified, not hoped."""
    # Celery reads CELERY_BROKER_URL from the environment first, and the Django-namespaced keys
    # before the plain ones: set all of them.
    os.environ["CELERY_BROKER_URL"] = broker_url
    routes = {"evaluations.tasks.run_evaluation": {"queue": f"{queue}-evaluations"}}
    app.conf.update(
        CELERY_BROKER_URL=broker_url,
        broker_url=broker_url,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        task_default_queue=queue,
        task_always_eager=False,
        CELERY_TASK_ROUTES=routes,
        task_routes=routes,
    )
    # Drop connections made for the previous broker, and the AMQP helper that cached the previous
    # default queue (in its task sender): the next send builds both anew from the configuration.
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    # kombu keeps its pools in a global registry keyed by the broker: drop the closed ones too, or the
    # next live test on the same broker acquires from a closed pool ("Acquire on closed pool").
    kombu_pools.reset()
    app.__dict__.pop("amqp", None)
    assert (app.conf.broker_url, app.amqp.default_queue.name) == (broker_url, queue)
    assert app.amqp.router.route({}, "evaluations.tasks.run_evaluation")["queue"].name == f"{queue}-evaluations"


@pytest.fixture
def live_stack(tmp_path, settings):
    """This process's Celery on Redis (a queue of its own) and the local runtime in a temporary dir."""
    from deploy_portal.celery import app

    stack = LiveStack(tmp_path)
    before = (app.conf.broker_url, app.conf.task_default_queue)
    environ_before = os.environ.get("CELERY_BROKER_URL")
    settings.DEPLOY_RUNTIME = "local"
    settings.LOCAL_RUNTIME_DIR = stack.runtime_dir
    settings.LOCAL_STOP_GRACE_SECONDS = 3
    _point_celery_at(app, REDIS_URL, stack.queue)
    yield stack
    _point_celery_at(app, *before)
    stack.kill_instances()
    if environ_before is None:
        os.environ.pop("CELERY_BROKER_URL", None)
    else:
        os.environ["CELERY_BROKER_URL"] = environ_before


class LiveWorker:
    """A ``celery worker`` subprocess (solo pool) of the live stack.

    By default it consumes both of the stack's queues and runs beat; ``queues=("evaluations",)`` makes
    it an evaluations-only worker (no beat), ``queues=("default",)`` one that never runs an evaluation.
    """

    def __init__(self, stack, queues=("default", "evaluations"), beat=True, name="worker"):
        self.stack = stack
        self.queues = [stack.queue if which == "default" else stack.evaluations_queue for which in queues]
        self.beat, self.name = beat, name
        self.log_path = stack.root / f"{name}.log"
        self.process = None

    def start(self, timeout=30):
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "deploy_portal",
                "worker",
                "--pool=solo",
                *(["-B", "-s", str(self.stack.root / "beat-schedule")] if self.beat else []),
                "--loglevel=INFO",
                "-Q",
                ",".join(self.queues),
                "-n",
                f"{self.stack.queue}-{self.name}@%h",
            ],
            cwd=REPO,
            env=self.stack.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(
            lambda: self.process.poll() is not None or " ready." in self.log(),
            timeout,
            message=lambda: self.log()[-3000:],
        )
        if self.process.poll() is not None:
            pytest.fail(f"the Celery worker exited at start:\n{self.log()[-3000:]}")
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _signal(self, signum, timeout):
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self):
        """Warm shutdown: the worker finishes what it runs (SIGTERM)."""
        self._signal(signal.SIGTERM, 20)

    def kill(self):
        """A crash: SIGKILL to the worker and its beat; instance processes live in sessions of their own."""
        self._signal(signal.SIGKILL, 10)


@pytest.fixture
def live_worker(live_stack):
    worker = LiveWorker(live_stack).start()
    yield worker
    worker.stop()
    from scheduler.runtimes.local.runtime import LocalRuntime

    runtime = LocalRuntime(root=live_stack.runtime_dir, stop_grace=1)
    for workload in runtime.workloads():
        runtime.remove_workload(workload)
    shutil.rmtree(live_stack.runtime_dir, ignore_errors=True)
