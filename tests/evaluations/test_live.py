"""Evaluations on the live stack: a Celery worker on Redis runs them against a task the local runtime
started (the demo model server), and a developer evaluates a running task in a real browser.

Run: ``NODEPORT_RANGE=31800-32199 LIVE_REDIS_URL=redis://127.0.0.1:6379/3 \
python -m pytest tests/evaluations/test_live.py``.
"""

import pytest
from playwright.sync_api import expect

from evaluations.models import Evaluation, EvaluationStatus, FailureReason
from scheduler.runtimes.local.isolation import demo_python
from scheduler.services import task_start, task_stop
from tasks.models import Task
from tasks.services import task_create
from tasks.states import Status
from tests.api.conftest import api_client as api
from tests.browser import log_in
from tests.factories import make_world, task_data
from tests.live import LiveWorker, live_stack, live_worker, wait_until  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180),
              pytest.mark.usefixtures("anyone_sets_commands")]

DEMO_MODEL = [demo_python(), "-m", "demo_model"]


@pytest.fixture
def live_celery(live_stack, monkeypatch):
    """Point this process's sends at the live worker's queue.

    ``live_stack`` sets ``app.conf.broker_url`` / ``task_default_queue``, but with Django settings under the
    ``CELERY`` namespace Celery reads ``CELERY_BROKER_URL`` (the environment variable first, then the setting)
    and ``CELERY_TASK_DEFAULT_QUEUE``, so without this the messages go to ``memory://``.
    """
    from kombu import pools

    from deploy_portal.celery import app

    def point(broker_url, queue):
        app.conf["CELERY_BROKER_URL"] = broker_url
        app.conf["CELERY_TASK_DEFAULT_QUEUE"] = queue
        if app._pool is not None:
            app._pool.force_close_all()
            app._pool = None
        app.amqp._producer_pool = None
        pools.reset()

    before = (app.conf["CELERY_BROKER_URL"], app.conf["CELERY_TASK_DEFAULT_QUEUE"])
    monkeypatch.setenv("CELERY_BROKER_URL", live_stack.env["CELERY_BROKER_URL"])
    point(live_stack.env["CELERY_BROKER_URL"], live_stack.queue)
    assert (app.conf.broker_url, app.conf.task_default_queue) == (live_stack.env["CELERY_BROKER_URL"], live_stack.queue)
    yield
    monkeypatch.undo()
    point(*before)


def running_demo_task(world, *, name="demo", token_delay="0.01", first_token_delay="0.05"):
    """A task running the demo model through the local runtime, with known token delays."""
    env = [{"name": "DEMO_TOKEN_DELAY", "value": token_delay},
           {"name": "DEMO_FIRST_TOKEN_DELAY", "value": first_token_delay}]
    task = task_create(user=world.member, data=task_data(world, name=name, command=DEMO_MODEL, env=env, mounts=[]))
    task_start(task=task, user=world.member)
    wait_until(lambda: Task.objects.get(pk=task.pk).status == Status.RUNNING, timeout=60)
    task = Task.objects.get(pk=task.pk)
    import httpx

    wait_until(lambda: _answers(httpx, task.endpoint), timeout=30)
    return task


def _answers(httpx, endpoint):
    try:
        return httpx.get(f"{endpoint}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def finished(evaluation_id):
    evaluation = Evaluation.objects.get(pk=evaluation_id)
    return evaluation if not evaluation.is_active else None


def test_the_worker_runs_an_evaluation_and_a_stopped_task_ends_the_next_one(live_celery, live_worker):
    world = make_world()
    task = running_demo_task(world, token_delay="0.02", first_token_delay="0.1")
    client = api(world.member)

    created = client.post(f"/api/v1/tasks/{task.pk}/evaluations/",
                          {"request_count": 16, "concurrency": 4, "max_tokens": 6}, format="json")
    assert created.status_code == 201, created.json()
    busy = client.post(f"/api/v1/tasks/{task.pk}/evaluations/", {}, format="json")
    assert busy.status_code == 409  # one run per task at a time
    evaluation = wait_until(lambda: finished(created.json()["id"]), timeout=60,
                            message=lambda: live_worker.log()[-3000:])
    assert evaluation.status == EvaluationStatus.SUCCEEDED, evaluation.status_message
    results = client.get(f"/api/v1/evaluations/{evaluation.pk}/").json()["results"]
    assert (results["completed"], results["failed"], results["total_output_tokens"]) == (16, 0, 96)
    assert 100 <= results["ttft_ms"]["p50"] <= 300
    assert 20 <= results["tpot_ms"]["p50"] <= 60

    # A long run; the task is stopped while it goes: the run fails and keeps what it measured.
    long_run = client.post(f"/api/v1/tasks/{task.pk}/evaluations/",
                           {"request_count": 2000, "concurrency": 2, "max_tokens": 6}, format="json").json()
    wait_until(lambda: Evaluation.objects.get(pk=long_run["id"]).status == EvaluationStatus.RUNNING, timeout=30)
    task_stop(task=Task.objects.get(pk=task.pk), user=world.member)
    stopped = wait_until(lambda: finished(long_run["id"]), timeout=60, message=lambda: live_worker.log()[-3000:])
    assert stopped.status == EvaluationStatus.FAILED
    assert stopped.failure_reason in (FailureReason.TASK_STOPPED, FailureReason.TASK_NOT_RUNNING)
    answer = client.get(f"/api/v1/evaluations/{stopped.pk}/").json()
    assert answer["status_message"] == str(stopped.get_failure_reason_display())
    assert stopped.results == {} or stopped.results["completed"] < 2000
    assert client.post(f"/api/v1/tasks/{task.pk}/evaluations/", {}, format="json").status_code == 409


@pytest.fixture
def split_workers(live_stack):
    """The production layout: one worker for deploys, stops and beat, one for evaluations only."""
    workers = [LiveWorker(live_stack, queues=("default",), name="worker").start(),
               LiveWorker(live_stack, queues=("evaluations",), beat=False, name="evaluator").start()]
    yield workers
    for worker in workers:
        worker.stop()


def test_a_long_evaluation_does_not_hold_up_a_deploy(live_celery, split_workers):
    worker, evaluator = split_workers
    world = make_world()
    task = running_demo_task(world, name="evaluated")
    client = api(world.member)
    long_run = client.post(f"/api/v1/tasks/{task.pk}/evaluations/",
                           {"request_count": 2000, "concurrency": 1, "max_tokens": 6}, format="json").json()
    wait_until(lambda: Evaluation.objects.get(pk=long_run["id"]).status == EvaluationStatus.RUNNING, timeout=30,
               message=lambda: evaluator.log()[-3000:])

    other = task_create(user=world.member, data=task_data(world, name="meanwhile", command=DEMO_MODEL, mounts=[]))
    task_start(task=other, user=world.member)
    wait_until(lambda: Task.objects.get(pk=other.pk).status == Status.RUNNING, timeout=60,
               message=lambda: worker.log()[-3000:])
    assert Evaluation.objects.get(pk=long_run["id"]).status == EvaluationStatus.RUNNING  # still going meanwhile
    received = "Task evaluations.tasks.run_evaluation["  # the line a worker logs when it receives one
    assert received not in worker.log() and received in evaluator.log()
    task_stop(task=Task.objects.get(pk=task.pk), user=world.member)
    wait_until(lambda: finished(long_run["id"]), timeout=60, message=lambda: evaluator.log()[-3000:])


@pytest.mark.browser
def test_a_developer_evaluates_a_running_task_and_compares_it(live_celery, browser_context, live_worker):
    world = make_world()
    task = running_demo_task(world)

    page = log_in(browser_context(), world.member.username)
    page.goto(f"/tasks/{task.pk}/")
    panel = page.locator("#evaluations")
    expect(panel).to_contain_text("No evaluation yet")
    page.locator("#task-live [data-action=evaluate]").click()  # the task's operations, from the state table
    dialog = page.locator("#modal")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(task.endpoint)
    dialog.locator("#id_request_count").fill("24")
    dialog.locator("#id_concurrency").fill("4")
    dialog.locator("#id_max_tokens").fill("12")
    dialog.locator("[data-action=start-evaluation]").click()

    # The results page follows the run by itself until it has its figures and charts.
    results = page.locator("#evaluation-results")
    expect(results).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(results.locator("[data-figure=completed]")).to_have_text("24")
    expect(results.locator("[data-figure=failed]")).to_have_text("0")
    chart = results.locator("svg").first
    expect(chart).to_be_visible()
    assert chart.locator("rect.bar").count() >= 1
    expect(results.locator("tr[data-metric=ttft]")).to_be_visible()
    evaluation = Evaluation.objects.get(task=task)

    # The task's panel lists the run; the comparison table has its row.
    page.goto(f"/tasks/{task.pk}/")
    expect(page.locator(f"#evaluations tr[data-evaluation='{evaluation.pk}']")).to_contain_text("Succeeded")
    page.locator("#evaluations >> text=Compare with other tasks").click()
    row = page.locator(f"table.evaluation-comparison tr[data-evaluation='{evaluation.pk}']")
    expect(row).to_contain_text(task.name)
    expect(row).to_contain_text(task.image)
    expect(row.locator("[data-figure=request_throughput]")).not_to_have_text("—")
