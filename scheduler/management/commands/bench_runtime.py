"""Latency from pressing start on a free virtual cluster to the runtime's apply call, with a warm worker.

Starts its own Celery worker (solo pool, no beat: the path measured is event-driven) on a queue of
its own, on the configured broker and database, with the local runtime in a temporary directory.
Each run creates a task in a throwaway VC of one free machine, times ``task_start`` (the service
the start button and the API call) until the worker's ``LocalRuntime.apply`` begins (the
``applied_at`` it records), then stops the task and waits for its teardown, so the next run meets a
warm, idle worker and a free VC again. Prints one JSON line; everything it created is removed.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from clusters.models import Node, Project, QueuePolicy, VirtualCluster
from scheduler import services
from scheduler.runtimes.local.records import RecordStore
from tasks.models import Task, TaskInstance
from tasks.states import Status

TARGET_MS = 100
SETTLE_SECONDS = 0.5


class Command(BaseCommand):
    help = "Median latency from start to the runtime's apply call, with a warm Celery worker (prints JSON)."

    def add_arguments(self, parser):
        parser.add_argument("--runs", type=int, default=20, help="measured runs (after 3 warm-up runs)")
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one apply or teardown")

    def handle(self, *, runs, timeout, **options):
        app = current_app
        work = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
        queue = f"bench-runtime-{uuid.uuid4().hex[:10]}"
        store = RecordStore(work / "local-runtime")
        previous_queue = app.conf.task_default_queue
        self._use_queue(app, queue)
        worker = self._start_worker(work, queue, timeout)
        world = self._world()
        self.service_seconds, self.dispatch_seconds = [], []
        try:
            for _ in range(3):  # warm-up: imports, connections, the first process spawn
                self._run(world, store, timeout)
            samples = [self._run(world, store, timeout) for _ in range(runs)]
        finally:
            self._use_queue(app, previous_queue)
            self._stop_worker(worker)
            self._clean(world)
            shutil.rmtree(work, ignore_errors=True)
        samples_ms = sorted(s * 1000 for s in samples)
        result = {
            "benchmark": "start_to_runtime_apply",
            "runtime": "local",
            "broker": app.conf.broker_url.split("://")[0],
            "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            "runs": runs,
            "median_ms": round(statistics.median(samples_ms), 1),
            "p90_ms": round(samples_ms[max(0, int(len(samples_ms) * 0.9) - 1)], 1),
            "min_ms": round(samples_ms[0], 1),
            "max_ms": round(samples_ms[-1], 1),
            "target_median_ms": TARGET_MS,
            # Of which the start service itself (locks, placement, commit, publish), and then
            # the message's way to the worker up to the apply call:
            "start_service_median_ms": round(statistics.median(self.service_seconds[3:]) * 1000, 1),
            "worker_to_apply_median_ms": round(statistics.median(self.dispatch_seconds[3:]) * 1000, 1),
        }
        self.stdout.write(json.dumps(result))

    @staticmethod
    def _use_queue(app, queue):
        # The Django-namespaced key is read before the plain one; set both.
        app.conf.update(CELERY_TASK_DEFAULT_QUEUE=queue, task_default_queue=queue)
        # The AMQP helper caches the default queue (in its task sender): let the next send rebuild it.
        app.__dict__.pop("amqp", None)
        if app.amqp.default_queue.name != queue:
            raise CommandError(f"could not route this process's messages to the queue {queue}")

    # -- one run -------------------------------------------------------------------------
    def _run(self, world, store, timeout):
        task = Task.objects.create(
            name=f"bench-{uuid.uuid4().hex[:8]}",
            project=world["project"],
            virtual_cluster=world["vc"],
            image="local/bench:latest",
            sku_count=1,
            replicas=1,
            expose_port=False,
            owner=world["user"],
            command=[
                sys.executable,
                "-c",
                "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(3600)",
            ],
        )
        pressed = time.time()
        task = services.task_start(task=task, user=world["user"])
        returned = time.time()
        self.service_seconds.append(returned - pressed)
        if task.status != Status.DEPLOYING:
            raise CommandError(f"the bench task did not deploy at once (it is {task.status})")
        instance_id = TaskInstance.objects.get(run_id=task.current_run_id).pk
        record = self._poll(lambda: store.load(instance_id), timeout, "the worker never applied the task")
        services.task_stop(task=task, user=world["user"])
        self._poll(lambda: not store.path(instance_id, "json").exists(), timeout, "the worker never tore the task down")
        # Let the stop's follow-up work (the VC's scheduling pass) finish: the next run meets an idle worker.
        time.sleep(SETTLE_SECONDS)
        self.dispatch_seconds.append(record.applied_at - returned)
        return record.applied_at - pressed

    @staticmethod
    def _poll(predicate, timeout, failure):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.002)
        raise CommandError(failure)

    # -- the worker ----------------------------------------------------------------------
    def _start_worker(self, work, queue, timeout):
        log_path = work / "worker.log"
        env = {
            **os.environ,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "DEPLOY_RUNTIME": "local",
            "LOCAL_RUNTIME_DIR": str(work / "local-runtime"),
            "LOCAL_STOP_GRACE_SECONDS": "2",
        }
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "deploy_portal",
                    "worker",
                    "--pool=solo",
                    "-Q",
                    queue,
                    "-n",
                    f"{queue}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--loglevel=INFO",
                ],
                cwd=settings.BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._poll(
            lambda: process.poll() is not None or " ready." in log_path.read_text(errors="replace"),
            timeout,
            "the Celery worker did not start",
        )
        if process.poll() is not None:
            raise CommandError(f"the Celery worker exited:\n{log_path.read_text(errors='replace')[-2000:]}")
        return process

    @staticmethod
    def _stop_worker(process):
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    # -- the throwaway world ---------------------------------------------------------------
    @staticmethod
    def _world():
        name = f"bench-runtime-{uuid.uuid4().hex[:8]}"
        user = get_user_model().objects.create_user(username=name)
        project = Project.objects.create(name=name)
        project.members.add(user)
        vc = VirtualCluster.objects.create(name=name, gpu_type="bench", queue_policy=QueuePolicy.BEST_EFFORT_FIFO)
        vc.users.add(user)
        Node.objects.create(virtual_cluster=vc, name=name, gpu_type="bench", sku_capacity=1)
        return {"user": user, "project": project, "vc": vc}

    @staticmethod
    def _clean(world):
        Task.objects.filter(virtual_cluster=world["vc"]).delete()
        Node.objects.filter(virtual_cluster=world["vc"]).delete()
        world["vc"].delete()
        world["project"].delete()
        world["user"].delete()
