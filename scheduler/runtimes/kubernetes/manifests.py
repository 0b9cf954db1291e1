"""Kubernetes manifests, built by pure functions over plain data (like KubeSpawner's ``make_pod``).

Nothing here touches the database or the API: ``make_pod`` and ``make_service`` turn an
``InstanceSpec`` / ``ServiceSpec`` into the JSON the API accepts, so they can be validated
against the Kubernetes schemas and read in tests.
"""

from dataclasses import dataclass, field

from tasks.validation import parse_quantity

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "deploy-portal"
TASK_LABEL = "deploy-portal/task-id"
INDEX_LABEL = "deploy-portal/instance-index"
INSTANCE_LABEL = "deploy-portal/instance-id"
RUN_LABEL = "deploy-portal/run-id"
CONTAINER = "model"
SHM_VOLUME = "dshm"
GPU_RESOURCE = "nvidia.com/gpu"
SELECTOR = f"{MANAGED_BY}={MANAGER}"



@dataclass(frozen=True)
class MountSpec:
    name: str
    kind: str  # nfs | pvc | hostPath
    source: str
    mount_path: str
    read_only: bool = False


@dataclass(frozen=True)
class InstanceSpec:
    task_id: int
    run_id: int
    instance_id: int
    index: int
    node_name: str
    image: str
    gpus: int
    cpus: int
    memory_gib: int
    env: tuple = ()  # (name, value) pairs; value None: the key ``name`` of the run's Secret ``env_secret``
    env_secret: str = ""
    command: tuple = ()
    args: tuple = ()
    container_port: int | None = None
    shm_size: str | None = None
    mounts: tuple = ()  # MountSpec
    image_pull_secrets: tuple = ()
    termination_grace_seconds: int = 30
    labels: dict = field(default_factory=dict)
    run_as_non_root: bool = False  # the VC's setting: images differ


@dataclass(frozen=True)
class SecretSpec:
    """The run's secret environment variables: one Secret per run, read by its pods through ``secretKeyRef``."""

    task_id: int
    run_id: int
    data: tuple = ()  # (name, value) pairs


@dataclass(frozen=True)
class ServiceSpec:
    task_id: int
    run_id: int
    container_port: int
    node_port: int


def pod_name(task_id, index):
    return f"dp-task-{task_id}-{index}"


def service_name(task_id):
    return f"dp-task-{task_id}"


def env_secret_name(run_id):
    """Per run, not per task like the pods: a run's Secret never changes, and a new run's pods never read an
    earlier run's values."""
    return f"dp-run-{run_id}-env"


def task_selector(task_id):
    return f"{SELECTOR},{TASK_LABEL}={task_id}"


def shm_quantity(value):
    """``SHM_SIZE`` as the pod's ``sizeLimit``: the value as given, once the one parser validation uses takes it.

    Raises ValueError for what is not a size (validation refuses those at creation already).
    """
    size = parse_quantity(value)
    if size is None or size <= 0:
        raise ValueError(f"not a size: {value!r}")
    return str(value).strip()


def instance_labels(spec):
    return {
        MANAGED_BY: MANAGER,
        TASK_LABEL: str(spec.task_id),
        RUN_LABEL: str(spec.run_id),
        INDEX_LABEL: str(spec.index),
        INSTANCE_LABEL: str(spec.instance_id),
        **spec.labels,
    }


def _volume(mount):
    if mount.kind == "nfs":
        server, _, path = mount.source.partition(":")
        return {"name": mount.name, "nfs": {"server": server, "path": path or "/", "readOnly": mount.read_only}}
    if mount.kind == "pvc":
        return {"name": mount.name, "persistentVolumeClaim": {"claimName": mount.source, "readOnly": mount.read_only}}
    if mount.kind == "hostPath":
        return {"name": mount.name, "hostPath": {"path": mount.source, "type": "Directory"}}
    raise ValueError(f"unknown storage kind {mount.kind!r}")


def make_pod(spec: InstanceSpec, *, namespace):
    """The pod of one instance: bound to ``spec.node_name``, limits from ``sku_count × bundle``,
    ``/dev/shm`` as a memory ``emptyDir`` sized by ``SHM_SIZE``, env, storages, the optional
    command/args, a TCP readiness probe on the container port, the image pull secrets.
    """
    resources = {GPU_RESOURCE: str(spec.gpus), "cpu": str(spec.cpus), "memory": f"{spec.memory_gib}Gi"}
    shm = {"medium": "Memory"}
    if spec.shm_size:
        shm["sizeLimit"] = shm_quantity(spec.shm_size)
    container = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "env": [
            {"name": name, "value": value} if value is not None
            else {"name": name, "valueFrom": {"secretKeyRef": {"name": spec.env_secret, "key": name}}}
            for name, value in spec.env
        ],
        # GPUs, CPU and memory are all requested and limited: the pod gets Guaranteed QoS.
        "resources": {"limits": dict(resources), "requests": dict(resources)},
        "volumeMounts": [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}]
        + [{"name": mount.name, "mountPath": mount.mount_path, "readOnly": mount.read_only} for mount in spec.mounts],
    }
    # Pod Security Standard "restricted": no privilege escalation, no capability, the runtime's seccomp profile
    # (on the pod); runAsNonRoot only where the VC says its images have a non-root user.
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        **({"runAsNonRoot": True} if spec.run_as_non_root else {}),
    }
    if spec.command:
        container["command"] = list(spec.command)
    if spec.args:
        container["args"] = list(spec.args)
    if spec.container_port:
        container["ports"] = [{"name": "http", "containerPort": spec.container_port, "protocol": "TCP"}]
        container["readinessProbe"] = {
            "tcpSocket": {"port": spec.container_port},
            "periodSeconds": 5,
            "failureThreshold": 3,
        }
    pod_spec = {
        "automountServiceAccountToken": False,  # a model server has no business with the Kubernetes API
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": spec.termination_grace_seconds,
        # Bound to the machine the scheduler chose, still through the kube-scheduler, so that a
        # machine that cannot take it reports Unschedulable instead of a silent kubelet rejection.
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [spec.node_name]}]}
                    ]
                }
            }
        },
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [container],
        "volumes": [{"name": SHM_VOLUME, "emptyDir": shm}] + [_volume(mount) for mount in spec.mounts],
    }
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in spec.image_pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(spec.task_id, spec.index),
            "namespace": namespace,
            "labels": instance_labels(spec),
        },
        "spec": pod_spec,
    }


def make_env_secret(spec: SecretSpec, *, namespace):
    """The run's Secret: immutable (a run's configuration does not change), labelled with its task and run, so a
    teardown, or reconcile once the run is over, removes it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": env_secret_name(spec.run_id),
            "namespace": namespace,
            "labels": {MANAGED_BY: MANAGER, TASK_LABEL: str(spec.task_id), RUN_LABEL: str(spec.run_id)},
        },
        "type": "Opaque",
        "immutable": True,
        "stringData": dict(spec.data),
    }


def make_service(spec: ServiceSpec, *, namespace):
    """The NodePort Service that exposes the run's container port on the task's external port, on every machine."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(spec.task_id),
            "namespace": namespace,
            "labels": {MANAGED_BY: MANAGER, TASK_LABEL: str(spec.task_id), RUN_LABEL: str(spec.run_id)},
        },
        "spec": {
            "type": "NodePort",
            # The run's pods only: a pod of an earlier run still terminating is never served.
            "selector": {MANAGED_BY: MANAGER, TASK_LABEL: str(spec.task_id), RUN_LABEL: str(spec.run_id)},
            "ports": [
                {
                    "name": "http",
                    "protocol": "TCP",
                    "port": spec.container_port,
                    "targetPort": spec.container_port,
                    "nodePort": spec.node_port,
                }
            ],
        },
    }
