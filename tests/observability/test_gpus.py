"""GPU utilisation where it can be read: a fake nvidia-smi on PATH, DCGM through a Prometheus on loopback;
an instance's reading on its tab, and a task idle for hours flagged there and in the managers' list."""

import json
import stat
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from observability import selectors, services
from observability.gpus import parse_dcgm, parse_nvidia_smi_utilisation
from observability.models import GpuUtilisationSample
from tasks.models import InstanceStatus, TaskInstance
from tasks.states import Status
from tests.factories import TaskFactory, current_run

pytestmark = pytest.mark.django_db


def fake_nvidia_smi(directory, lines):
    script = directory / "nvidia-smi"
    script.write_text("#!/bin/sh\ncat <<'EOF'\n" + "".join(f"{line}\n" for line in lines) + "EOF\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def running(world):
    """alice's task running for five hours on gpu-00, its instance on GPUs 0 and 1."""
    task = TaskFactory(
        virtual_cluster=world.vc, project=world.project, owner=world.member, name="serving", sku_count=2,
        status=Status.RUNNING, started_at=timezone.now() - timedelta(hours=5),
    )
    instance = TaskInstance.objects.create(
        task=task, run=current_run(task), index=0, node=world.nodes[0], node_name=world.nodes[0].name, gpu_type="NVIDIA-H100",
        sku_count=2, gpu_count=2, gpu_indices=[0, 1], status=InstanceStatus.READY,
    )
    return task, instance


def test_nvidia_smi_readings_are_averaged_over_the_instances_gpus(running, tmp_path, monkeypatch):
    _task, instance = running
    fake_nvidia_smi(tmp_path, ["0, 30, 40000", "1, 50, 42000", "2, 99, 80000", "3, [N/A], [N/A]"])
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert services.gpu_utilisation_sample() == 1
    sample = GpuUtilisationSample.objects.get()
    assert (sample.instance_id, sample.utilisation, sample.memory_used_mib) == (instance.pk, 40.0, 82000)


def test_without_nvidia_smi_nothing_is_sampled(running, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert services.gpu_utilisation_sample() == 0
    assert not GpuUtilisationSample.objects.exists()


def test_a_changed_nvidia_smi_format_is_an_error_not_a_silent_zero():
    with pytest.raises(ValueError):
        parse_nvidia_smi_utilisation("0, 30\n")


@pytest.fixture
def prometheus(settings):
    """A Prometheus on loopback answering the DCGM instant query."""
    answer = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0", "Hostname": "gpu-00"}, "value": [0, "12"]},
        {"metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "1", "Hostname": "gpu-00"}, "value": [0, "20"]},
        {"metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0", "Hostname": "gpu-01"}, "value": [0, "97"]},
    ]}}
    queries = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            queries.append(self.path)
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    low, high = settings.NODEPORT_RANGE
    for port in range(high - 19, high - 9):
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
            break
        except OSError:
            continue
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.DEPLOY_RUNTIME, settings.DCGM_PROMETHEUS_URL = "kubernetes", f"http://127.0.0.1:{port}/"
    yield queries
    server.shutdown()
    server.server_close()


def test_dcgm_readings_through_prometheus_are_matched_by_machine_and_gpu(running, prometheus):
    _task, instance = running
    assert services.gpu_utilisation_sample() == 1
    assert prometheus == ["/api/v1/query?query=DCGM_FI_DEV_GPU_UTIL"]
    sample = GpuUtilisationSample.objects.get()
    assert (sample.instance_id, sample.utilisation, sample.memory_used_mib) == (instance.pk, 16.0, None)
    assert parse_dcgm({"data": {"result": [{"metric": {"gpu": "x"}, "value": [0, "1"]}]}}) == {}


def sample(instance, hours_ago, utilisation):
    GpuUtilisationSample.objects.create(
        instance=instance, at=timezone.now() - timedelta(hours=hours_ago), utilisation=utilisation,
    )


def test_a_task_idle_for_hours_is_flagged_on_its_tab_and_in_the_managers_list(client, running, manager, settings):
    settings.IDLE_HOURS, settings.IDLE_UTILISATION_PERCENT = 4, 5.0
    task, instance = running
    for hours in (3.9, 2, 1, 0.1):
        sample(instance, hours, 1.5)
    sample(instance, 4.5, 80)  # busy before the idle window
    assert selectors.idle_tasks(now=timezone.now()) == {task.pk: 1.5}

    client.force_login(task.owner)
    tab = client.get(f"/tasks/{task.pk}/instances/", HTTP_ACCEPT_LANGUAGE="en")
    assert b"data-idle" in tab.content and b"Idle for 4 hours" in tab.content
    assert b'data-gpu-utilisation="1.5"' in tab.content
    assert client.get("/idle-deployments/").status_code == 403
    client.force_login(manager)
    listed = client.get("/idle-deployments/")
    assert [row["task"].pk for row in listed.context["rows"]] == [task.pk]

    sample(instance, 0.05, 60)  # busy again
    assert selectors.idle_tasks(now=timezone.now()) == {}
    client.force_login(task.owner)
    assert b"data-idle" not in client.get(f"/tasks/{task.pk}/instances/").content


def test_a_task_started_less_than_the_hours_ago_is_not_idle_yet(running, settings):
    task, instance = running
    settings.IDLE_HOURS = 6
    sample(instance, 1, 0)
    assert selectors.idle_tasks(now=timezone.now()) == {}


def test_a_task_without_readings_shows_no_utilisation_column(client, running):
    task, _instance = running
    client.force_login(task.owner)
    assert b"data-gpu-utilisation" not in client.get(f"/tasks/{task.pk}/instances/").content
