"""The portal's evaluation pages: the task panel, the evaluate dialog, a run's results, the comparison."""

import re

import pytest
from django.template.loader import render_to_string
from django.test import Client

from deploy_portal.portal.charts import histogram, histogram_chart
from evaluations.models import Evaluation, EvaluationStatus
from evaluations.services import evaluation_run
from tasks.states import Status
from tests.factories import PASSWORD, ProjectFactory, TaskFactory, UserFactory

from .conftest import running_task

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]


@pytest.fixture
def member_client(world):
    client = Client()
    client.cookies["django_language"] = "en"
    assert client.login(username=world.member.username, password=PASSWORD)
    return client


def finished_run(task, **results):
    samples = [100.0, 120.0, 130.0, 400.0]
    base = {
        "completed": 4, "failed": 1, "errors": ["HTTP 500: boom"], "duration_s": 2.0, "total_output_tokens": 64,
        "request_throughput": 2.0, "output_throughput": 32.0,
        **{f"{m}_ms": {"mean": 10.0, "p50": 9.0, "p90": 20.0, "p99": 30.0} for m in ("ttft", "tpot", "itl", "e2el")},
        "samples_ms": {"ttft": samples, "e2el": samples},
    }
    return Evaluation.objects.create(
        task=task, status=EvaluationStatus.SUCCEEDED, results={**base, **results},
        task_config={"image": task.image, "sku_count": task.sku_count, "replicas": 1, "env": []},
    )


def test_histogram_bins_every_value_once():
    values = [1.0, 2.0, 2.5, 9.0, 10.0]
    bins = histogram(values, 3)
    assert [count for _, _, count in bins] == [3, 0, 2]
    assert bins[0][0] == 1.0 and bins[-1][1] == 10.0
    assert histogram([5.0, 5.0], 4) == [(5.0, 5.0, 2)]
    assert histogram([], 4) == [] and histogram_chart([]) is None


def test_histogram_chart_bars_fit_the_plot():
    chart = histogram_chart([float(v) for v in range(100)], bins=10)
    assert len(chart.bars) == 10 and sum(bar.count for bar in chart.bars) == 100
    for bar in chart.bars:
        assert chart.plot_left <= bar.x and bar.x + bar.width <= chart.plot_right
        assert chart.plot_top - 0.01 <= bar.y and bar.y + bar.height <= chart.plot_bottom + 0.01


def test_task_panel_lists_the_latest_runs(world):
    task = running_task(world, port=31999)
    assert "No evaluation yet" in render_to_string("evaluations/_task_panel.html", {"task": task})
    runs = [finished_run(task) for _ in range(7)]
    html = render_to_string("evaluations/_task_panel.html", {"task": task, "user": world.member})
    listed = re.findall(r'<tr data-evaluation="(\d+)"', html)
    assert listed == [str(run.pk) for run in reversed(runs)][:5]  # the latest five, latest first
    assert f'href="/evaluations/?task={task.pk}"' in html


@pytest.mark.parametrize(
    ("fields", "reason"),
    [({"status": Status.STOPPED}, "Cannot evaluate"), ({"expose_port": False, "port": None}, "no endpoint")],
)
def test_evaluate_dialog_explains_a_refusal(world, member_client, fields, reason):
    task = running_task(world, **{"port": 31999, **fields})
    dialog = member_client.get(f"/evaluations/tasks/{task.pk}/new/", headers={"HX-Request": "true"})
    assert dialog.status_code == 200 and reason in dialog.content.decode()
    assert b'name="concurrency"' not in dialog.content
    page = member_client.get(f"/evaluations/tasks/{task.pk}/new/")
    assert page.status_code == 409 and reason in page.content.decode()


def test_evaluate_form_as_dialog_and_page(world, member_client):
    task = running_task(world, port=31999)
    dialog = member_client.get(f"/evaluations/tasks/{task.pk}/new/", headers={"HX-Request": "true"})
    assert dialog.status_code == 200 and b"<html" not in dialog.content
    assert b'name="concurrency"' in dialog.content and b"http://127.0.0.1:31999" in dialog.content
    page = member_client.get(f"/evaluations/tasks/{task.pk}/new/")
    assert page.status_code == 200 and b"<html" in page.content
    form = page.content.decode()
    assert "From 1 to 5000." in form and "From 1 to 256." in form and "From 1 to 8192." in form
    tag = re.search(r'<input[^>]*name="max_tokens"[^>]*>', form).group(0)
    assert 'min="1"' in tag and 'max="8192"' in tag, tag  # the browser knows the same limits


def test_posting_the_form_starts_a_run_and_shows_it(world, member_client, enqueued,
                                                     django_capture_on_commit_callbacks):
    task = running_task(world, port=31999)
    data = {"endpoint_kind": "chat", "max_tokens": "32", "request_count": "20", "concurrency": "4",
            "timeout_seconds": "30"}
    with django_capture_on_commit_callbacks(execute=True):
        response = member_client.post(f"/evaluations/tasks/{task.pk}/new/", data)
    evaluation = Evaluation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/evaluations/{evaluation.pk}/"
    assert enqueued == [evaluation.pk] and evaluation.endpoint_kind == "chat" and evaluation.concurrency == 4
    page = member_client.get(response["Location"])
    assert b"Pending" in page.content and b'hx-trigger="every 2s"' in page.content


def test_bad_input_is_shown_on_the_field(world, member_client, enqueued):
    task = running_task(world, port=31999)
    data = {"endpoint_kind": "completions", "max_tokens": "0", "request_count": "5", "concurrency": "1",
            "timeout_seconds": "30"}
    response = member_client.post(f"/evaluations/tasks/{task.pk}/new/", data)
    assert response.status_code == 200 and b'id="max_tokens-errors"' in response.content
    assert not Evaluation.objects.exists()


def test_a_refused_evaluation_goes_back_to_the_task_with_the_reason(world, member_client, enqueued):
    task = running_task(world, port=None, status=Status.STOPPED)
    data = {"endpoint_kind": "completions", "max_tokens": "8", "request_count": "5", "concurrency": "1",
            "timeout_seconds": "30"}
    response = member_client.post(f"/evaluations/tasks/{task.pk}/new/", data, follow=True)
    assert response.redirect_chain[-1][0] == f"/tasks/{task.pk}/"
    assert "Cannot evaluate" in " ".join(str(m) for m in response.context["messages"])
    assert not Evaluation.objects.exists()


def test_results_page_shows_figures_and_latency_charts(world, member_client, fast_server, enqueued):
    task = running_task(world, port=fast_server.port)
    response = member_client.post(f"/evaluations/tasks/{task.pk}/new/", {
        "endpoint_kind": "completions", "max_tokens": "4", "request_count": "12", "concurrency": "3",
        "timeout_seconds": "10",
    })
    evaluation = evaluation_run(evaluation_id=Evaluation.objects.get().pk)
    page = member_client.get(response["Location"]).content.decode()
    assert "Succeeded" in page and 'hx-trigger="every 2s"' not in page
    assert re.search(r'data-figure="completed">12<', page)
    assert page.count("<svg") == 2  # end-to-end and time to first token
    charts = re.findall(r"<svg.*?</svg>", page, re.S)
    counts = [int(n) for n in re.findall(r"ms: (\d+)</title>", charts[0])]
    assert sum(counts) == 12
    assert evaluation.results["samples_ms"]["e2el"]


def test_polling_answers_204_until_progress_or_status_change(world, member_client):
    task = running_task(world, port=31999)
    run = Evaluation.objects.create(task=task, status=EvaluationStatus.RUNNING, request_count=50)
    poll = {"headers": {"HX-Request": "true"}}
    assert member_client.get(f"/evaluations/{run.pk}/?seen=running-0", **poll).status_code == 204

    Evaluation.objects.filter(pk=run.pk).update(requests_done=20)
    answer = member_client.get(f"/evaluations/{run.pk}/?seen=running-0", **poll)
    assert "HX-Refresh" not in answer
    progress = answer.content.decode()
    assert "20 of 50 requests done" in progress and "?seen=running-20" in progress

    Evaluation.objects.filter(pk=run.pk).update(status=EvaluationStatus.FAILED, failure_reason="task_stopped")
    partial = member_client.get(f"/evaluations/{run.pk}/?seen=running-20", **poll)
    assert partial.status_code == 200 and b"<html" not in partial.content
    assert b"The task stopped running during the evaluation" in partial.content
    assert b"hx-trigger" not in partial.content  # finished: no more polling
    assert partial["HX-Refresh"] == "true"  # and the page reloads whole, header included


def test_comparison_lists_finished_runs_of_visible_tasks(world, member_client):
    original = running_task(world, port=31999, name="original")
    copy = running_task(world, port=31998, name="copy-4sku", sku_count=4, image="registry.example.com/llm/demo:2")
    a = finished_run(original, request_throughput=2.5)
    b = finished_run(copy, request_throughput=7.25)
    Evaluation.objects.create(task=original, status=EvaluationStatus.RUNNING)  # not finished: not compared
    hidden_task = TaskFactory(project=ProjectFactory(members=[UserFactory()]), name="secret")
    finished_run(hidden_task)

    page = member_client.get("/evaluations/").content.decode()
    rows = re.findall(r'<tr data-evaluation="(\d+)"', page)
    assert rows == [str(b.pk), str(a.pk)]
    assert "secret" not in page and "registry.example.com/llm/demo:2" in page and "7.25" in page

    narrowed = member_client.get(f"/evaluations/?task={original.pk}").content.decode()
    assert re.findall(r'<tr data-evaluation="(\d+)"', narrowed) == [str(a.pk)]


def test_pages_of_invisible_tasks_answer_404(world, enqueued):
    task = running_task(world, port=31999)
    run = finished_run(task)
    outsider = UserFactory(username="mallory")
    client = Client()
    client.login(username=outsider.username, password=PASSWORD)
    assert client.get(f"/evaluations/{run.pk}/").status_code == 404
    assert client.get(f"/evaluations/tasks/{task.pk}/new/").status_code == 404
    assert client.post(f"/evaluations/tasks/{task.pk}/new/", {}).status_code == 404
    anonymous = Client().get("/evaluations/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
