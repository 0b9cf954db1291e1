"""/metrics scraped and parsed with prometheus_client's own parser, against a known world."""

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from observability import services
from observability.metrics import failure_reason

pytestmark = pytest.mark.django_db


def scrape(client, **headers):
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def test_every_metric_matches_the_known_world(client, known_world):
    services.heartbeat(name="celery@w1", now=timezone.now() - timezone.timedelta(seconds=40))
    samples = scrape(client, REMOTE_ADDR="127.0.0.1")
    h100, a100 = {"virtual_cluster": "h100"}, {"virtual_cluster": "a100"}

    assert value(samples, "deploy_portal_vc_capacity_gpus", **h100) == 8
    assert value(samples, "deploy_portal_vc_allocated_gpus", **h100) == 6
    assert value(samples, "deploy_portal_vc_free_gpus", **h100) == 2
    assert value(samples, "deploy_portal_vc_capacity_skus", **h100) == 8
    assert value(samples, "deploy_portal_vc_largest_free_block_skus", **h100) == 2
    assert value(samples, "deploy_portal_vc_queued_tasks", **h100) == 2
    assert value(samples, "deploy_portal_vc_pinned_tasks", **h100) == 1
    assert value(samples, "deploy_portal_vc_unschedulable_skus", **h100) == 0
    assert value(samples, "deploy_portal_vc_unschedulable_gpus", **a100) == 4
    assert value(samples, "deploy_portal_vc_capacity_gpus", **a100) == 2
    assert value(samples, "deploy_portal_vc_free_gpus", **a100) == 0
    assert value(samples, "deploy_portal_vc_pinned_tasks", **a100) == 0

    states = {state: value(samples, "deploy_portal_tasks", state=state, **h100) for state in (
        "running", "deploying", "queued", "failed", "killed", "stopped", "not_deployed",
    )}
    assert states == {
        "running": 1, "deploying": 1, "queued": 2, "failed": 1, "killed": 0, "stopped": 0, "not_deployed": 0,
    }

    # Waits: on a100, the forced task waited 120 s; on h100 nobody has been placed from the queue yet.
    assert value(samples, "deploy_portal_task_wait_seconds_count", **a100) == 1
    assert value(samples, "deploy_portal_task_wait_seconds_sum", **a100) == pytest.approx(120, abs=0.01)
    assert value(samples, "deploy_portal_task_wait_seconds_bucket", le="60.0", **a100) == 0
    assert value(samples, "deploy_portal_task_wait_seconds_bucket", le="300.0", **a100) == 1
    assert ("deploy_portal_task_wait_seconds_count", tuple(h100.items())) not in samples
    # Deploys: on h100 the serving task became ready 30 s after its placement.
    assert value(samples, "deploy_portal_task_deploy_seconds_count", **h100) == 1
    assert value(samples, "deploy_portal_task_deploy_seconds_sum", **h100) == pytest.approx(30, abs=0.01)
    assert value(samples, "deploy_portal_task_deploy_seconds_bucket", le="15.0", **h100) == 0
    assert value(samples, "deploy_portal_task_deploy_seconds_bucket", le="30.0", **h100) == 1
    assert value(samples, "deploy_portal_task_deploy_seconds_bucket", le="+Inf", **h100) == 1

    assert value(samples, "deploy_portal_force_start_kills_total", **a100) == 1
    assert value(samples, "deploy_portal_force_start_kills_total", **h100) == 0
    assert value(samples, "deploy_portal_task_failures_total", reason="exited", **h100) == 1
    assert value(samples, "deploy_portal_worker_heartbeat_age_seconds", worker="celery@w1") == pytest.approx(40, abs=5)



def test_the_histograms_observed_in_this_process_are_scraped_with_the_world(client, db):
    from scheduler.scheduling import schedule_all

    before = scrape(client, REMOTE_ADDR="127.0.0.1")
    schedule_all()
    after = scrape(client, REMOTE_ADDR="127.0.0.1")
    passes = "deploy_portal_scheduling_pass_seconds_count"
    assert value(after, passes) == value(before, passes) + 1
    assert ("deploy_portal_start_apply_seconds_bucket", (("le", "+Inf"),)) in after


def test_a_scrape_reads_a_fixed_number_of_queries(client, known_world, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        client.get("/metrics", REMOTE_ADDR="127.0.0.1")


def test_metrics_are_refused_outside_the_allowed_networks_without_the_token(client, db, settings):
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


@pytest.mark.parametrize("msgid, reason", [
    ("The process exited with code %(code)s — check the command and the log.", "exited"),
    ("The task did not become ready within %(seconds)s seconds — check the logs, or raise DEPLOY_TIMEOUT_SECONDS for a model that loads slowly.", "timeout"),
    ("OOMKilled — the instance ran out of memory; raise SKU count.", "out_of_memory"),
    ("Image %(image)s cannot be pulled: %(detail)s — %(hint)s.", "image_pull"),
    ("", "other"),
])
def test_failure_reasons_are_named_from_the_innermost_words(msgid, reason):
    assert failure_reason(msgid) == reason


def test_the_grafana_dashboard_uses_only_metrics_that_are_exposed(client, known_world):
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"] for target in panel["targets"]
        for name in re.findall(r"deploy_portal_\w+", target["expr"])
    }
    services.heartbeat(name="celery@w1")
    exposed = {name for name, _labels in scrape(client, REMOTE_ADDR="127.0.0.1")}
    assert used and used <= exposed, used - exposed
    families = {re.sub(r"_(bucket|total)$", "", name) for name in used}
    assert {"deploy_portal_task_wait_seconds", "deploy_portal_task_failures", "deploy_portal_vc_allocated_gpus"} <= families


def test_histograms_observed_in_other_processes_are_summed_from_the_shared_directory(client, db, tmp_path, monkeypatch):
    """Two processes (two gunicorn or Celery workers) observe; a third serves /metrics from their files."""
    import os
    import subprocess
    import sys

    observe = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'deploy_portal.settings'); django.setup()\n"
        "from scheduler.instruments import SCHEDULING_PASS_SECONDS, START_APPLY_SECONDS\n"
        "SCHEDULING_PASS_SECONDS.observe(0.02); START_APPLY_SECONDS.observe(3)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", observe], env=env, check=True, timeout=60)
    assert len(list(tmp_path.glob("histogram_*.db"))) == 2

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    samples = scrape(client, REMOTE_ADDR="127.0.0.1")
    assert value(samples, "deploy_portal_scheduling_pass_seconds_count") == 2
    assert value(samples, "deploy_portal_scheduling_pass_seconds_bucket", le="0.025") == 2
    assert value(samples, "deploy_portal_start_apply_seconds_sum") == pytest.approx(6)
