"""Machines as the cluster reports them: a pure reading of the Node objects' JSON."""

from dataclasses import dataclass

from .manifests import GPU_RESOURCE


@dataclass(frozen=True)
class ClusterNode:
    name: str
    virtual_cluster: str
    gpu_type: str
    gpus: int
    schedulable: bool


def _ready(node):
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def cluster_nodes(nodes, *, vc_label, gpu_label):
    """The GPU machines among ``nodes`` (API JSON) that carry ``vc_label``, sorted by name.

    GPU count is the allocatable ``nvidia.com/gpu``; GPU type the ``gpu_label`` (the NVIDIA GPU
    feature discovery's product label), else "unknown"; a machine is schedulable when it is Ready
    and not cordoned. Machines without the label or without GPUs are not the portal's.
    """
    found = []
    for node in nodes:
        metadata = node.get("metadata") or {}
        labels = metadata.get("labels") or {}
        vc = labels.get(vc_label)
        gpus = int(((node.get("status") or {}).get("allocatable") or {}).get(GPU_RESOURCE, 0) or 0)
        if not vc or gpus <= 0:
            continue
        found.append(
            ClusterNode(
                name=metadata["name"],
                virtual_cluster=vc,
                gpu_type=labels.get(gpu_label, "unknown"),
                gpus=gpus,
                schedulable=_ready(node) and not (node.get("spec") or {}).get("unschedulable", False),
            )
        )
    return sorted(found, key=lambda n: n.name)
