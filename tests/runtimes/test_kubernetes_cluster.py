"""The Kubernetes runtime against a real cluster: the kmock scenario, for real.

Runs only when ``KUBECONFIG`` names a cluster with a Ready GPU node (``KUBERNETES_TEST_NODE`` picks
one; else the first with allocatable ``nvidia.com/gpu``). Pods go to ``KUBERNETES_TEST_NAMESPACE``
(default ``deploy-portal-test``, created when absent) and run ``KUBERNETES_TEST_IMAGE`` (default
``python:3.12-alpine``, serving ``python -m http.server`` on the container port).
"""

import os
import time

import pytest

from deploy_portal.messages import render
from scheduler import jobs
from tasks.models import InstanceStatus, Task
from tasks.secrets import env_seal
from tasks.states import Status

pytestmark = [
    pytest.mark.kubernetes,
    pytest.mark.django_db,
    pytest.mark.skipif(
        not os.environ.get("KUBECONFIG"), reason="needs a real cluster: set KUBECONFIG to run this suite"
    ),
]
NAMESPACE = os.environ.get("KUBERNETES_TEST_NAMESPACE", "deploy-portal-test")
IMAGE = os.environ.get("KUBERNETES_TEST_IMAGE", "python:3.12-alpine")


def eventually(predicate, timeout, interval=1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


@pytest.fixture
def cluster(settings):
    from kubernetes import client

    from scheduler import runtimes
    from scheduler.runtimes.kubernetes.runtime import KubernetesRuntime, load_api_client

    api = load_api_client()
    core = client.CoreV1Api(api)
    wanted = os.environ.get("KUBERNETES_TEST_NODE")
    gpu_nodes = [
        n.metadata.name
        for n in core.list_node().items
        if int((n.status.allocatable or {}).get("nvidia.com/gpu", "0")) > 0
        and (not wanted or n.metadata.name == wanted)
    ]
    if not gpu_nodes:
        pytest.skip("the cluster given by KUBECONFIG has no GPU node to bind instances to")
    try:
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    settings.DEPLOY_RUNTIME, settings.KUBERNETES_NAMESPACE = "kubernetes", NAMESPACE
    runtime = KubernetesRuntime(api, namespace=NAMESPACE, image_pull_secrets=[])
    runtimes._runtimes[("kubernetes", NAMESPACE)] = runtime
    yield runtime, gpu_nodes[0]
    runtimes._runtimes.pop(("kubernetes", NAMESPACE), None)


@pytest.fixture
def on_gpu_node(cluster, placed, world):
    runtime, node_name = cluster
    machine = world.nodes[0]
    machine.name = node_name
    machine.save()

    def make(**fields):
        fields.setdefault("image", IMAGE)
        fields.setdefault("container_port", 8000)
        fields.setdefault("command", ["python", "-m", "http.server", "8000"])
        fields.setdefault("env", [{"name": "SHM_SIZE", "value": "1Gi"}])
        return placed(nodes=[machine], **fields)

    return make


def test_apply_ready_logs_and_teardown(cluster, on_gpu_node):
    runtime, _ = cluster
    task = on_gpu_node(expose_port=False)
    try:
        runtime.apply(task.current_run)
        runtime.apply(task.current_run)  # idempotent
        assert eventually(lambda: jobs.observe_task(task.pk) == Status.RUNNING, 300)
        assert [o.status for o in runtime.observe(task.current_run)] == [InstanceStatus.READY]
        assert isinstance(runtime.read_log(task.instances.get(), tail=10), str)
    finally:
        Task.objects.filter(pk=task.pk).update(status=Status.STOPPED)  # teardown follows a task holding nothing
        runtime.teardown(task.current_run)
    assert eventually(lambda: not [w for w in runtime.workloads() if w.task_id == task.pk], 120)


def test_an_image_that_cannot_be_pulled_fails_fast(cluster, on_gpu_node):
    runtime, _ = cluster
    task = on_gpu_node(image="registry.k8s.io/deploy-portal/no-such-image:v0", command=[], expose_port=False)
    try:
        runtime.apply(task.current_run)
        assert eventually(lambda: jobs.observe_task(task.pk) == Status.FAILED, 180)
        task.refresh_from_db()
        assert "cannot be pulled" in render(task.status_message)
    finally:
        Task.objects.filter(pk=task.pk).update(status=Status.STOPPED)  # teardown follows a task holding nothing
        runtime.teardown(task.current_run)


def test_a_secret_env_var_reaches_the_container_through_the_runs_secret(cluster, on_gpu_node):
    runtime, _ = cluster
    env = env_seal([{"name": "SHM_SIZE", "value": "1Gi"}, {"name": "HF_TOKEN", "value": "hf_cluster", "secret": True}])
    task = on_gpu_node(
        expose_port=False, env=env, command=["sh", "-c", 'echo "token=$HF_TOKEN"; exec python -m http.server 8000'],
    )
    try:
        runtime.apply(task.current_run)
        assert eventually(lambda: jobs.observe_task(task.pk) == Status.RUNNING, 300)
        assert "token=hf_cluster" in runtime.read_log(task.instances.get(), tail=10)
    finally:
        Task.objects.filter(pk=task.pk).update(status=Status.STOPPED)
        runtime.teardown(task.current_run)
    # The run's Secret goes with its pods.
    assert eventually(lambda: not [w for w in runtime.workloads() if w.task_id == task.pk], 120)
