"""The Kubernetes runtime through the real ``kubernetes`` client against kmock's API emulator.

Apply creates the right pods and service; statuses map to instance and task states with their
sentences; replays are idempotent; 500s and timeouts are retried; teardown removes everything.
"""

import asyncio
import sys

import kubernetes_validate
import pytest

from deploy_portal.messages import render
from scheduler import jobs
from scheduler.runtimes.base import RuntimeFailure, TransientRuntimeError
from tasks.models import InstanceStatus, Task, TaskMount
from tasks.secrets import env_seal
from tasks.services import bulk_current_runs
from tasks.states import Status
from tests.factories import StorageFactory

pytestmark = pytest.mark.django_db
IMAGE = "registry.example.com/team/model:v2"


@pytest.fixture
def task(placed, world):
    nfs = world.storage
    nfs.read_only = True
    nfs.save()
    task = placed(
        replicas=2,
        sku_count=2,
        image=IMAGE,
        endpoint_port=30123,
        container_port=8000,
        env=[{"name": "SHM_SIZE", "value": "60G"}, {"name": "HF_HOME", "value": "/models"}],
        command=["python", "-m", "vllm.entrypoints.openai.api_server"],
        args=["--port", "8000"],
    )
    TaskMount.objects.create(task=task, storage=nfs, mount_path="/models")
    cache = StorageFactory(kind="pvc", source="cache-claim")
    TaskMount.objects.create(task=task, storage=cache, mount_path="/cache")
    return task


def running_ready():
    return {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {"name": "model", "image": IMAGE, "imageID": "", "ready": True, "restartCount": 0, "state": {"running": {}}}
        ],
    }


def waiting(reason, message="", restarts=0, last=None):
    status = {
        "name": "model",
        "image": IMAGE,
        "imageID": "",
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": message}},
    }
    if last:
        status["lastState"] = {"terminated": last}
    return {"phase": "Pending" if not restarts else "Running", "containerStatuses": [status]}


def test_apply_creates_bound_pods_with_limits_shm_volumes_env_and_a_service(kube, kube_runtime, task, world):
    kube_runtime.apply(task.current_run)
    pods = kube.objects("pods")
    assert sorted(pods) == [f"dp-task-{task.pk}-0", f"dp-task-{task.pk}-1"]
    first = pods[f"dp-task-{task.pk}-0"]
    instance = task.instances.get(index=0)
    assert first["metadata"]["labels"]["deploy-portal/instance-id"] == str(instance.pk)
    node_term = first["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert node_term["nodeSelectorTerms"][0]["matchFields"][0]["values"] == [instance.node_name]
    container = first["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "2", "cpu": "24", "memory": "240Gi"}
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "60G"}} in first["spec"]["volumes"]
    volumes = {v["name"]: v for v in first["spec"]["volumes"]}
    assert volumes["storage-0"]["nfs"] == {"server": "nfs.example.com", "path": "/exports/models", "readOnly": True}
    assert volumes["storage-1"]["persistentVolumeClaim"] == {"claimName": "cache-claim", "readOnly": False}
    assert {"name": "HF_HOME", "value": "/models"} in container["env"]
    assert container["command"] == ["python", "-m", "vllm.entrypoints.openai.api_server"]
    assert first["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    service = kube.objects("services")[f"dp-task-{task.pk}"]
    assert service["spec"]["ports"][0]["nodePort"] == 30123 and service["spec"]["type"] == "NodePort"
    assert [i.handle for i in task.instances.order_by("index")] == sorted(pods)
    # What the runtime really sent is valid for the current Kubernetes minor.
    sent = [request.data for request in kube.requests("post")]
    assert [body["kind"] for body in sent] == ["Service", "Pod", "Pod"]  # the Service first: see KubernetesRuntime.apply
    for body in sent:
        kubernetes_validate.validate(body, "1.37.0", strict=True)


def test_apply_replayed_creates_nothing_twice(kube, kube_runtime, task):
    kube_runtime.apply(task.current_run)
    kube_runtime.apply(task.current_run)
    assert len(kube.objects("pods")) == 2 and len(kube.objects("services")) == 1
    assert len(kube.requests("post", "pods")) == 4  # two answered 409, read back, kept


def test_a_stale_pod_of_an_earlier_run_is_replaced(kube, kube_runtime, task):
    kube_runtime.apply(task.current_run)
    name = f"dp-task-{task.pk}-0"
    kube.patch("pods", name, {"metadata": {"labels": {"deploy-portal/instance-id": "999999"}}})
    with pytest.raises(TransientRuntimeError):
        kube_runtime.apply(task.current_run)
    assert name not in kube.objects("pods")
    kube_runtime.apply(task.current_run)  # the Celery retry
    assert kube.objects("pods")[name]["metadata"]["labels"]["deploy-portal/instance-id"] == str(
        task.instances.get(index=0).pk
    )


def test_a_node_port_still_allocated_creates_no_pod_until_the_service_exists(kube, kube_runtime, task):
    held = "Service is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    kube.call(lambda k: k["post", k.resource("v1/services")][:1] << 422 << {"kind": "Status", "message": held})
    with pytest.raises(TransientRuntimeError):
        kube_runtime.apply(task.current_run)
    assert kube.objects("pods") == {} and set(task.instances.values_list("handle", flat=True)) == {""}
    kube_runtime.apply(task.current_run)  # the Celery retry (or reconcile: the task is still unapplied)
    assert len(kube.objects("services")) == 1 and len(kube.objects("pods")) == 2


def test_server_errors_are_transient_and_the_retry_completes_the_apply(kube, kube_runtime, task):
    # One attempt per call, no sleeping in the worker: the Celery task retries. The emulator stores the pod
    # before answering 500, as a real API server may: the retry then meets 409, reads the pod back, and keeps
    # it because it is this very instance's.
    kube.call(lambda k: k["post", k.resource("v1/pods")][:1] << 500)
    kube.call(lambda k: k["list", k.resource("v1/pods")][:1] << 502)
    with pytest.raises(TransientRuntimeError):
        kube_runtime.apply(task.current_run)
    kube_runtime.apply(task.current_run)
    assert len(kube.objects("pods")) == 2
    assert len(kube.requests("post", "pods")) == 3
    with pytest.raises(TransientRuntimeError):
        kube_runtime.observe(task.current_run)
    assert [o.exists for o in kube_runtime.observe(task.current_run)] == [True, True]


def test_a_timeout_is_transient_and_the_next_look_succeeds(kube, kube_runtime, task):
    async def slow(request):
        await asyncio.sleep(2)
        return {"items": []}

    kube_runtime.apply(task.current_run)
    kube.call(lambda k: k["list", k.resource("v1/pods")][:1] << slow)
    with pytest.raises(TransientRuntimeError):  # within the request timeout, not after it
        kube_runtime.observe(task.current_run)
    observations = kube_runtime.observe(task.current_run)
    assert [o.exists for o in observations] == [True, True]


def test_errors_that_persist_are_transient_for_celery_and_refusals_are_permanent(kube, kube_runtime, task):
    kube.call(lambda k: k["list", k.resource("v1/pods")] << 503)
    with pytest.raises(TransientRuntimeError):
        kube_runtime.observe(task.current_run)
    kube.call(lambda k: k["post", k.resource("v1/pods")] << 422)
    with pytest.raises(RuntimeFailure):
        kube_runtime.apply(task.current_run)


def test_a_refusal_says_what_the_api_server_said(kube, kube_runtime, task):
    quota = 'pods "dp-task-1-0" is forbidden: exceeded quota: gpu, requested: nvidia.com/gpu=2, limited: nvidia.com/gpu=1'
    kube.call(lambda k: k["post", k.resource("v1/pods")] << 403 << {"kind": "Status", "reason": "Forbidden", "message": quota})
    with pytest.raises(RuntimeFailure) as refused:
        kube_runtime.apply(task.current_run)
    assert str(refused.value.sentence).endswith(f": {quota}")


@pytest.mark.parametrize(
    ("status", "instance_state", "words"),
    [
        (
            waiting("ErrImagePull", "failed to resolve reference: manifest unknown"),
            InstanceStatus.FAILED,
            f"Image {IMAGE} cannot be pulled: manifest unknown — check the tag.",
        ),
        (
            waiting("CrashLoopBackOff", restarts=3, last={"reason": "OOMKilled", "exitCode": 137}),
            InstanceStatus.FAILED,
            "OOMKilled — the instance ran out of memory; raise SKU count.",
        ),
        (
            waiting("CrashLoopBackOff", restarts=5, last={"reason": "Error", "exitCode": 135}),
            InstanceStatus.FAILED,
            "/dev/shm full",
        ),
        (waiting("ContainerCreating"), InstanceStatus.PENDING, "ContainerCreating"),
        (running_ready(), InstanceStatus.READY, ""),
    ],
)
def test_pod_statuses_map_to_instance_states(kube, kube_runtime, task, status, instance_state, words):
    kube_runtime.apply(task.current_run)
    kube.patch("pods", f"dp-task-{task.pk}-1", {"status": status})
    second = kube_runtime.observe(task.current_run)[1]
    assert second.status == instance_state and words in render(second.message)


def test_observed_failure_fails_the_task_with_the_sentence(kube, kube_runtime, task):
    kube_runtime.apply(task.current_run)
    kube.patch("pods", f"dp-task-{task.pk}-0", {"status": running_ready()})
    kube.patch("pods", f"dp-task-{task.pk}-1", {"status": waiting("ImagePullBackOff", "Back-off pulling image")})
    assert jobs.observe_task(task.pk) == Status.FAILED
    task.refresh_from_db()
    assert render(task.status_message).startswith("Instance 1 on ")
    assert f"Image {IMAGE} cannot be pulled" in render(task.status_message)
    assert list(task.instances.order_by("index").values_list("status", flat=True)) == [
        InstanceStatus.READY,
        InstanceStatus.FAILED,
    ]


def test_every_instance_ready_makes_the_task_running_and_records_where_the_gateway_reaches_it(kube, kube_runtime, task):
    kube_runtime.apply(task.current_run)
    kube.patch("pods", f"dp-task-{task.pk}-0", {"status": {**running_ready(), "podIP": "10.1.2.3"}})
    assert jobs.observe_task(task.pk) == Status.DEPLOYING
    kube.patch("pods", f"dp-task-{task.pk}-1", {"status": {**running_ready(), "podIP": "fd00::7"}})
    assert jobs.observe_task(task.pk) == Status.RUNNING
    # The pod's own IP and container port: the gateway balances over the pods itself, past the NodePort.
    assert [i.address for i in task.instances.order_by("index")] == ["10.1.2.3:8000", "[fd00::7]:8000"]


def test_deploy_timeout_fails_the_task(kube, kube_runtime, task, settings):
    settings.DEPLOY_TIMEOUT_SECONDS = 0
    kube_runtime.apply(task.current_run)
    assert jobs.observe_task(task.pk) == Status.FAILED
    task.refresh_from_db()
    assert "did not become ready within 0 seconds" in render(task.status_message)


def test_teardown_removes_everything_and_replays(kube, kube_runtime, task):
    kube_runtime.apply(task.current_run)
    Task.objects.filter(pk=task.pk).update(status=Status.STOPPED)  # teardown follows a task that holds nothing
    kube_runtime.teardown(task.current_run)
    assert kube.objects("pods") == {} and kube.objects("services") == {}
    kube_runtime.teardown(task.current_run)  # 404s are success


def test_secret_env_vars_reach_the_pods_through_the_runs_secret_never_as_plain_env(kube, kube_runtime, task):
    token = "hf_s3cr3t-value-that-must-never-show"
    task.env = task.env + env_seal([{"name": "HF_TOKEN", "value": token, "secret": True}])
    task.save()
    run = task.current_run
    kube_runtime.apply(run)
    kube_runtime.apply(run)  # replayed: the Secret exists already (409) and is kept
    secret_name = f"dp-run-{run.pk}-env"
    (secret,) = kube.objects("secrets").values()
    assert secret["metadata"]["name"] == secret_name and secret["immutable"] is True
    assert secret["stringData"] == {"HF_TOKEN": token}
    assert secret["metadata"]["labels"]["deploy-portal/run-id"] == str(run.pk)
    for pod in kube.objects("pods").values():
        env = pod["spec"]["containers"][0]["env"]
        assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "HF_TOKEN"}}} in env
        assert {"name": "HF_HOME", "value": "/models"} in env
    posted = kube.requests("post")
    assert [body.data["kind"] for body in posted][:2] == ["Service", "Secret"]  # the Secret before the pods
    for request in posted:
        kubernetes_validate.validate(request.data, "1.37.0", strict=True)
        if request.data["kind"] != "Secret":
            assert token not in str(request.data)
    Task.objects.filter(pk=task.pk).update(status=Status.STOPPED)
    kube_runtime.teardown(run)
    assert kube.objects("secrets") == {} and kube.objects("pods") == {}


def test_reconcile_removes_the_secret_of_a_run_that_no_longer_holds_gpus(kube, kube_runtime, task):
    task.env = env_seal([{"name": "HF_TOKEN", "value": "x", "secret": True}])
    task.save()
    kube_runtime.apply(task.current_run)
    Task.objects.filter(pk=task.pk).update(status=Status.STOPPED)  # its teardown never ran
    done = jobs.reconcile()
    assert f"dp-run-{task.current_run_id}-env" in done["removed"]
    assert kube.objects("secrets") == {} and kube.objects("pods") == {} and kube.objects("services") == {}


def test_a_late_teardown_of_an_earlier_run_spares_the_run_started_since(kube, kube_runtime, task):
    """Stop, then start again before the stop's teardown ran: the new run's pods and Service (same names) stay."""
    first = task.current_run
    kube_runtime.apply(first)
    old_instances = {str(pk) for pk in first.instances.values_list("pk", flat=True)}
    # The new run: fresh instance rows (new ids) of run 2, its pods applied over the old names.
    second = bulk_current_runs([task])[task.pk]
    for row in first.instances.all():
        row.pk, row.run, row.handle = None, second, ""
        row.save()
    for name in list(kube.objects("pods")):
        kube.call(lambda k, name=name: k.objects.__getitem__((k.resource("v1/pods"), "deploy-portal", name)).delete())
    with pytest.raises(TransientRuntimeError):  # the Service of run 1 is replaced first
        kube_runtime.apply(second)
    kube_runtime.apply(second)  # the Celery retry
    new_instances = {pod["metadata"]["labels"]["deploy-portal/instance-id"] for pod in kube.objects("pods").values()}
    assert new_instances and not new_instances & old_instances
    (service,) = kube.objects("services").values()
    assert service["metadata"]["labels"]["deploy-portal/run-id"] == str(second.pk)
    assert service["spec"]["selector"]["deploy-portal/run-id"] == str(second.pk)

    kube_runtime.teardown(first)  # the earlier run's teardown, arriving late
    assert len(kube.objects("pods")) == 2 and len(kube.objects("services")) == 1
    kube_runtime.teardown(second)
    assert kube.objects("pods") == {} and kube.objects("services") == {}


def test_reconcile_fails_a_task_whose_pod_vanished_and_removes_unknown_workloads(kube, kube_runtime, task, placed):
    kube_runtime.apply(task.current_run)
    Task.objects.filter(pk=task.pk).update(status=Status.RUNNING)
    kube.call(
        lambda k: k.objects.__getitem__((k.resource("v1/pods"), "deploy-portal", f"dp-task-{task.pk}-1")).delete()
    )
    ghost = placed(image=IMAGE, endpoint_port=30124)
    kube_runtime.apply(ghost.current_run)
    Task.objects.filter(pk=ghost.pk).update(status=Status.STOPPED)  # the database no longer holds it
    done = jobs.reconcile()
    task.refresh_from_db()
    assert task.status == Status.FAILED and "vanished" in render(task.status_message)
    assert f"dp-task-{ghost.pk}-0" in done["removed"] and f"dp-task-{ghost.pk}" in done["removed"]
    assert not any(name.startswith(f"dp-task-{ghost.pk}") for name in kube.objects("pods"))
    # The failed task no longer holds GPUs: its surviving pod goes in the same pass, its log archived first.
    assert kube.objects("pods") == {}
    assert task.instances.get(index=0).log_archived


def test_logs_tail_follow_and_archive(kube, kube_runtime, task, settings):
    settings.LOG_ARCHIVE_BYTES = 20  # the last 20 bytes, from the first line boundary in them
    kube.call(
        lambda k: (
            k["get", k.resource("v1/pods"), k.subresource("log")]
            << k.headers({"Content-Type": "text/plain"})
            << b"loading\nserving on 8000\n"
        )
    )
    kube_runtime.apply(task.current_run)
    instance = task.instances.get(index=0)
    assert kube_runtime.read_log(instance, tail=1) == "loading\nserving on 8000\n"
    assert kube.requests("get", "pods")[-1].params["tailLines"] == "1"
    kube_runtime.archive_logs(task.current_run)
    instance.refresh_from_db()
    assert instance.log_archived and instance.log_archive == "serving on 8000\n"
    kube_runtime.teardown(task.current_run)
    kube.call(lambda k: k["get", k.resource("v1/pods"), k.subresource("log")].override << 404)
    from scheduler.logs import instance_log_text

    assert instance_log_text(instance, tail=5) == "serving on 8000\n"
    assert sys.modules["scheduler.runtimes"].get_runtime() is kube_runtime


def test_a_reconcile_pass_lists_pods_once_and_a_pod_newer_than_its_snapshot_is_no_vanishing(
    kube, kube_runtime, task, placed
):
    kube_runtime.apply(task.current_run)
    snapshot = kube_runtime.snapshot()
    later = placed(image=IMAGE, endpoint_port=30125)
    kube_runtime.apply(later.current_run)  # created after the snapshot
    lists_before = len(kube.requests("get", "pods"))
    assert [o.exists for o in kube_runtime.observe(task.current_run, snapshot=snapshot)] == [True, True]
    assert len(kube.requests("get", "pods")) == lists_before  # answered from the snapshot
    assert [o.exists for o in kube_runtime.observe(later.current_run, snapshot=snapshot)] == [True]
    assert len(kube.requests("get", "pods")) == lists_before + 1  # not in the snapshot: read anew


def test_scheduling_failures_are_read_from_the_pods_events(kube, kube_runtime, task):
    kube_runtime.apply(task.current_run)
    name = f"dp-task-{task.pk}-0"
    long_ago = "2026-01-01T00:00:00Z"
    kube.patch(
        "pods",
        name,
        {
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "lastTransitionTime": long_ago,
                    }
                ],
            }
        },
    )
    kube.put(
        "events",
        f"{name}.1",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.1", "namespace": "deploy-portal"},
            "involvedObject": {"kind": "Pod", "name": name, "namespace": "deploy-portal"},
            "reason": "FailedScheduling",
            "type": "Warning",
            "lastTimestamp": long_ago,
            "message": "0/3 nodes are available: 1 Insufficient nvidia.com/gpu.",
        },
    )
    first = kube_runtime.observe(task.current_run)[0]
    assert first.status == InstanceStatus.FAILED
    assert (
        "cannot be scheduled on its machine: 0/3 nodes are available: 1 Insufficient nvidia.com/gpu." in render(first.message)
    )
    assert f"involvedObject.name={name}" in [r.params["fieldSelector"] for r in kube.requests("get", "events")]
