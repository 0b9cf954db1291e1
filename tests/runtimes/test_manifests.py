"""The pod and service manifests: what they promise, and that the Kubernetes schemas accept them."""

import kubernetes_validate
import pytest

from scheduler.runtimes.kubernetes.manifests import (
    INDEX_LABEL,
    INSTANCE_LABEL,
    TASK_LABEL,
    InstanceSpec,
    MountSpec,
    SecretSpec,
    ServiceSpec,
    make_env_secret,
    make_pod,
    make_service,
    shm_quantity,
)
from tasks.validation import check_env

# The current minor and the oldest one still commonly run.
K8S_VERSIONS = ["1.37.0", "1.33.0"]


def spec(**overrides):
    data = dict(
        task_id=7,
        run_id=3,
        instance_id=42,
        index=1,
        node_name="gpu-03",
        image="registry.example.com/llm/vllm:0.6.0",
        gpus=2,
        cpus=24,
        memory_gib=240,
        env=(("HF_HOME", "/models"), ("SHM_SIZE", "60G")),
        command=("python", "-m", "vllm.entrypoints.openai.api_server"),
        args=("--port", "8000"),
        container_port=8000,
        shm_size="60G",
        mounts=(
            MountSpec(
                name="storage-0",
                kind="nfs",
                source="nfs.example.com:/exports/models",
                mount_path="/models",
                read_only=True,
            ),
            MountSpec(name="storage-1", kind="pvc", source="cache-claim", mount_path="/cache"),
            MountSpec(
                name="storage-2", kind="hostPath", source="/data/datasets", mount_path="/datasets", read_only=True
            ),
        ),
        image_pull_secrets=("regcred",),
    )
    data.update(overrides)
    return InstanceSpec(**data)


def container(pod):
    (only,) = pod["spec"]["containers"]
    return only


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "overrides",
    [{}, {"command": (), "args": (), "container_port": None, "shm_size": None, "mounts": (), "image_pull_secrets": ()}],
)
def test_pod_is_valid_against_the_schema(version, overrides):
    kubernetes_validate.validate(make_pod(spec(**overrides), namespace="deploy-portal"), version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_service_is_valid_against_the_schema(version):
    service = make_service(ServiceSpec(task_id=7, run_id=3, container_port=8000, node_port=30123), namespace="deploy-portal")
    kubernetes_validate.validate(service, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_a_secret_env_var_is_a_secret_key_ref_and_the_runs_secret_is_valid(version):
    pod = make_pod(spec(env=(("HF_HOME", "/models"), ("HF_TOKEN", None)), env_secret="dp-run-3-env"), namespace="dp")
    assert container(pod)["env"] == [
        {"name": "HF_HOME", "value": "/models"},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "dp-run-3-env", "key": "HF_TOKEN"}}},
    ]
    secret = make_env_secret(SecretSpec(task_id=7, run_id=3, data=(("HF_TOKEN", "hf_x"),)), namespace="dp")
    assert secret["metadata"]["name"] == "dp-run-3-env" and secret["stringData"] == {"HF_TOKEN": "hf_x"}
    assert secret["metadata"]["labels"][TASK_LABEL] == "7" and secret["immutable"] is True
    for manifest in (pod, secret):
        kubernetes_validate.validate(manifest, version, strict=True)


def test_an_invalid_manifest_is_caught_by_the_validation():
    pod = make_pod(spec(), namespace="deploy-portal")
    pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] = {"cores": 24}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSIONS[0], strict=True)


def test_pod_is_bound_to_its_machine_and_labelled():
    pod = make_pod(spec(), namespace="deploy-portal")
    assert pod["metadata"]["name"] == "dp-task-7-1"
    assert pod["metadata"]["labels"][TASK_LABEL] == "7"
    assert pod["metadata"]["labels"][INDEX_LABEL] == "1"
    assert pod["metadata"]["labels"][INSTANCE_LABEL] == "42"
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-03"]}]}]


def test_limits_come_from_sku_count_times_bundle():
    resources = container(make_pod(spec(), namespace="ns"))["resources"]
    assert resources["limits"] == {"nvidia.com/gpu": "2", "cpu": "24", "memory": "240Gi"}
    assert resources["requests"] == resources["limits"]


def test_shm_is_a_memory_empty_dir_sized_by_shm_size():
    pod = make_pod(spec(shm_size="512Mi"), namespace="ns")
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}} in pod["spec"]["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container(pod)["volumeMounts"]
    unsized = make_pod(spec(shm_size=None), namespace="ns")
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in unsized["spec"]["volumes"]


def test_storages_become_volumes_with_read_only_honoured():
    pod = make_pod(spec(), namespace="ns")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["storage-0"]["nfs"] == {"server": "nfs.example.com", "path": "/exports/models", "readOnly": True}
    assert volumes["storage-1"]["persistentVolumeClaim"] == {"claimName": "cache-claim", "readOnly": False}
    assert volumes["storage-2"]["hostPath"] == {"path": "/data/datasets", "type": "Directory"}
    mounts = {m["name"]: m for m in container(pod)["volumeMounts"]}
    assert mounts["storage-0"] == {"name": "storage-0", "mountPath": "/models", "readOnly": True}
    assert mounts["storage-1"]["readOnly"] is False


def test_env_command_args_probe_and_pull_secrets():
    pod = make_pod(spec(), namespace="ns")
    c = container(pod)
    assert c["env"] == [{"name": "HF_HOME", "value": "/models"}, {"name": "SHM_SIZE", "value": "60G"}]
    assert c["command"] == ["python", "-m", "vllm.entrypoints.openai.api_server"]
    assert c["args"] == ["--port", "8000"]
    assert c["readinessProbe"]["tcpSocket"] == {"port": 8000}
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    bare = container(make_pod(spec(command=(), args=(), container_port=None), namespace="ns"))
    assert "command" not in bare and "args" not in bare and "readinessProbe" not in bare


def test_service_exposes_the_container_port_on_the_node_port():
    service = make_service(ServiceSpec(task_id=7, run_id=3, container_port=8000, node_port=30123), namespace="ns")
    assert service["metadata"]["name"] == "dp-task-7"
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["selector"][TASK_LABEL] == "7"
    assert service["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 8000, "targetPort": 8000, "nodePort": 30123}
    ]


@pytest.mark.parametrize(
    ("given", "quantity"),
    [
        ("60G", "60G"),
        ("512Mi", "512Mi"),
        ("1.5Gi", "1.5Gi"),
        ("100k", "100k"),
        (" 2Gi ", "2Gi"),
    ],
)
def test_shm_size_becomes_a_quantity(given, quantity):
    assert shm_quantity(given) == quantity


@pytest.mark.parametrize("given", ["60g", "60GB", "512mi", "1gb", "4096", "0Gi", "60K", "1 G", "1e3G", "1500m"])
def test_the_manifest_takes_exactly_what_validation_takes(given):
    """One parser: a size the create form refuses is refused here too (``1gb`` was ``1G`` here and refused there)."""
    assert check_env([{"name": "SHM_SIZE", "value": given}])
    with pytest.raises(ValueError):
        shm_quantity(given)


@pytest.mark.parametrize("given", ["", "lots", "-1G", "60 X"])
def test_shm_size_that_is_not_a_size_is_refused(given):
    with pytest.raises(ValueError):
        shm_quantity(given)


@pytest.mark.parametrize("non_root", [False, True])
def test_pods_meet_the_restricted_pod_security_standard(non_root):
    pod = make_pod(spec(run_as_non_root=non_root), namespace="ns")
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    security = container(pod)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert security.get("runAsNonRoot", False) is non_root


@pytest.mark.django_db
def test_run_as_non_root_is_the_virtual_clusters_setting(world):
    from scheduler.runtimes.kubernetes.runtime import instance_spec
    from tests.factories import TaskFactory
    from tests.runtimes.conftest import place

    world.vc.run_as_non_root = True
    world.vc.save()
    task = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member)
    place(task, [world.nodes[0]])
    assert instance_spec(task, task.instances.get(), mounts=()).run_as_non_root is True
