"""End to end: a real Celery worker on Redis drives the local runtime against the test database.

Start a task running the demo model server → running with an endpoint that answers → logs →
stop → process gone, GPUs free, the queued task starts by itself. A command that exits at once
fails with its last log lines. A worker killed mid-deploy, or a deploy message lost with it, never
leaves a task stuck.
"""

import os
import signal
import tempfile

import httpx
import pytest
from django.utils import translation

from scheduler import services
from scheduler.runtimes.local.isolation import demo_python
from scheduler.runtimes.local.records import RecordStore, group_members, is_alive
from scheduler.logs import instance_log_text
from tasks.models import Task, TaskInstance
from tasks.states import Status
from tests.factories import NodeFactory, ProjectFactory, TaskFactory, UserFactory, VirtualClusterFactory
from tests.live import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def one_gpu(db):
    """A VC with one machine of one GPU, and a member who may use it."""
    user = UserFactory()
    project = ProjectFactory(members=[user])
    vc = VirtualClusterFactory(users=[user], endpoint_host="127.0.0.1")
    NodeFactory(virtual_cluster=vc, name="localhost-gpu", sku_capacity=1)
    return user, project, vc


def new_task(one_gpu, **fields):
    user, project, vc = one_gpu
    fields.setdefault("command", [])
    return TaskFactory(
        owner=user, project=project, virtual_cluster=vc, image="local/demo-model:latest", container_port=8000, **fields
    )


def status_of(task):
    return Task.objects.values_list("status", flat=True).get(pk=task.pk)


def reach(task, status, worker, timeout=30):
    return wait_until(
        lambda: status_of(task) == status,
        timeout,
        message=lambda: f"task is {status_of(task)}; worker log:\n{worker.log()[-4000:]}",
    )


def records(stack, task):
    store = RecordStore(stack.runtime_dir)
    return [store.load(pk) for pk in TaskInstance.objects.filter(task=task).values_list("pk", flat=True)]


def test_start_serve_log_stop_and_the_queue_moves_on(one_gpu, live_stack, live_worker):
    user = one_gpu[0]
    first, second = new_task(one_gpu, name="first"), new_task(one_gpu, name="second")
    assert services.task_start(task=first, user=user).status == Status.DEPLOYING
    assert services.task_start(task=second, user=user).status == Status.QUEUED

    reach(first, Status.RUNNING, live_worker)
    first.refresh_from_db()
    answer = httpx.post(
        f"{first.endpoint}/v1/completions", json={"model": "demo-llm", "prompt": "hello", "max_tokens": 4}, timeout=10
    )
    assert answer.status_code == 200 and answer.json()["choices"][0]["text"]
    instance = first.instances.get()
    assert "serving demo-llm on http://127.0.0.1:" in instance_log_text(instance)
    wait_until(lambda: "POST /v1/completions" in instance_log_text(instance, tail=5), 5)
    (record,) = records(live_stack, first)
    assert is_alive(record)

    services.task_stop(task=first, user=user)
    reach(second, Status.RUNNING, live_worker)
    assert not is_alive(record)
    assert not TaskInstance.objects.holding().filter(task=first).exists()
    instance.refresh_from_db()
    assert instance.log_archived and "POST /v1/completions" in instance_log_text(instance)
    second.refresh_from_db()
    assert httpx.get(f"{second.endpoint}/health", timeout=10).json() == {"status": "ok"}


def said(sentence, language):
    """A stored message as a reader of ``language`` reads it (the worker that wrote it spoke the site's language)."""
    with translation.override(language):
        return str(sentence)


def test_a_command_that_exits_at_once_fails_with_its_last_log_lines(one_gpu, live_stack, live_worker):
    task = new_task(
        one_gpu, command=["sh", "-c", "echo 'loading weights'; echo 'fatal: /models/qwen is empty' >&2; exit 2"]
    )
    services.task_start(task=task, user=one_gpu[0])
    reach(task, Status.FAILED, live_worker)
    task.refresh_from_db()
    english = said(task.status_message, "en")
    assert english.startswith("The process exited with code 2 — check the command and the log. Last log lines:")
    assert english.endswith("loading weights\nfatal: /models/qwen is empty")
    assert said(task.status_message, "zh-hans").startswith("进程以退出码 2 退出")
    assert not TaskInstance.objects.holding().filter(task=task).exists()
    wait_until(lambda: task.instances.get().log_archived, 10)
    assert "fatal: /models/qwen is empty" in instance_log_text(task.instances.get())


def test_a_worker_killed_mid_deploy_never_leaves_the_task_stuck(one_gpu, live_stack, live_worker):
    # The model takes a while to listen: the worker dies after apply, before ready.
    task = new_task(
        one_gpu,
        command=[
            "sh",
            "-c",
            'sleep 2; exec "$0" -m demo_model',
            demo_python(),
        ],
    )
    services.task_start(task=task, user=one_gpu[0])
    wait_until(
        lambda: TaskInstance.objects.filter(task=task).exclude(handle="").exists(),
        15,
        message=lambda: live_worker.log()[-3000:],
    )
    live_worker.kill()
    assert status_of(task) == Status.DEPLOYING
    (record,) = records(live_stack, task)
    assert is_alive(record)  # the instance outlives the worker: it runs in a session of its own
    live_worker.start()
    reach(task, Status.RUNNING, live_worker)
    assert records(live_stack, task)[0].pid == record.pid  # found again, not started twice


def test_a_deploy_lost_with_its_worker_is_applied_again(one_gpu, live_stack, live_worker):
    from deploy_portal.celery import app

    live_worker.stop()
    task = new_task(one_gpu)
    services.task_start(task=task, user=one_gpu[0])
    assert app.control.purge() >= 1  # the deploy message is gone, as with a worker that died holding it
    live_worker.start()
    reach(task, Status.RUNNING, live_worker)
    # And an instance that dies while running fails its task: the model is killed as by the OOM killer.
    (record,) = records(live_stack, task)
    (model_pid,) = [pid for pid in group_members(record.pid) if pid != record.pid]
    os.kill(model_pid, signal.SIGKILL)
    reach(task, Status.FAILED, live_worker)
    task.refresh_from_db()
    assert said(task.status_message, "en").startswith(
        "The process was killed (SIGKILL), most likely out of memory — raise SKU count."
    )
    wait_until(lambda: not group_members(record.pid), 10)


def test_a_crashed_runs_log_stays_readable_after_the_task_is_started_again(one_gpu, live_stack, live_worker):
    """Start → crash → start again: the first run's log is still there, through the API and the portal."""
    from django.test import Client
    from rest_framework.test import APIClient

    user = one_gpu[0]
    # Run 1 crashes (with a NUL byte and invalid UTF-8 in its output, which PostgreSQL text cannot hold as is);
    # run 2 serves.
    # The instance runs as the unprivileged instance user: its marker lives where that user may write.
    scratch = tempfile.mkdtemp(prefix="second-run-")
    os.chmod(scratch, 0o777)
    marker = f"{scratch}/started-once"
    task = new_task(
        one_gpu,
        command=[
            "sh", "-c",
            f'if [ -e {marker} ]; then exec "$0" -m demo_model; fi; touch {marker}; '
            "printf 'loading\\000weights \\377\\n'; echo 'CUDA error: out of memory' >&2; exit 3",
            demo_python(),
        ],
    )
    services.task_start(task=task, user=user)
    reach(task, Status.FAILED, live_worker)
    first = Task.objects.get(pk=task.pk).current_run
    crashed = first.instances.get()
    wait_until(lambda: TaskInstance.objects.get(pk=crashed.pk).log_archived, 15, message=lambda: live_worker.log()[-3000:])

    services.task_stop(task=Task.objects.get(pk=task.pk), user=user)  # SPEC: a failed task is stopped, then started
    services.task_start(task=Task.objects.get(pk=task.pk), user=user)
    reach(task, Status.RUNNING, live_worker)
    task.refresh_from_db()
    assert task.current_run.number == 2 and task.current_run_id != first.pk

    api = APIClient()
    api.force_authenticate(user)
    runs = api.get(f"/api/v1/tasks/{task.pk}/runs/").json()["results"]
    assert [(r["number"], r["outcome"]) for r in runs] == [(2, ""), (1, "failed")]
    assert runs[1]["instances"][0]["id"] == crashed.pk
    log = api.get(f"/api/v1/instances/{crashed.pk}/logs/", HTTP_ACCEPT="text/plain")
    text = b"".join(log.streaming_content).decode()
    assert "CUDA error: out of memory" in text and "loading\ufffdweights \ufffd" in text
    assert [i["run"] for i in api.get(f"/api/v1/tasks/{task.pk}/instances/").json()["results"]] == [task.current_run_id]

    portal = Client()
    portal.force_login(user)
    page = portal.get(f"/tasks/{task.pk}/runs/").content.decode()
    assert f'data-instance="{crashed.pk}"' in page and f"/instances/{crashed.pk}/log/" in page
    assert "CUDA error: out of memory" in portal.get(f"/instances/{crashed.pk}/log/").content.decode()
