"""Machines imported from cluster nodes (through the real client, against the API emulator) and from this machine."""

import io

import pytest
from django.core.management import call_command

from clusters.models import Node
from scheduler.runtimes.kubernetes.nodes import ClusterNode, cluster_nodes
from scheduler.runtimes.local import gpus
from tests.factories import NodeFactory, VirtualClusterFactory

VC_LABEL, GPU_LABEL = "deploy-portal/virtual-cluster", "nvidia.com/gpu.product"


def node(name, *, vc="h100", gpus="8", ready="True", cordoned=False, product="NVIDIA-H100-80GB-HBM3"):
    labels = {"kubernetes.io/hostname": name}
    if vc:
        labels[VC_LABEL] = vc
    if product:
        labels[GPU_LABEL] = product
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": cordoned},
        "status": {
            "allocatable": {"cpu": "192", "nvidia.com/gpu": gpus} if gpus else {"cpu": "64"},
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


def test_cluster_nodes_reads_labels_gpus_and_readiness():
    found = cluster_nodes(
        [
            node("gpu-b"),
            node("gpu-a", ready="False"),
            node("gpu-c", cordoned=True),
            node("cpu-1", gpus=None),
            node("other", vc=None),
            node("gpu-d", product=None, gpus="4"),
        ],
        vc_label=VC_LABEL,
        gpu_label=GPU_LABEL,
    )
    assert found == [
        ClusterNode("gpu-a", "h100", "NVIDIA-H100-80GB-HBM3", 8, False),
        ClusterNode("gpu-b", "h100", "NVIDIA-H100-80GB-HBM3", 8, True),
        ClusterNode("gpu-c", "h100", "NVIDIA-H100-80GB-HBM3", 8, False),
        ClusterNode("gpu-d", "h100", "unknown", 4, True),
    ]


@pytest.mark.django_db
def test_import_from_the_cluster(kube, kube_runtime):
    vc = VirtualClusterFactory(name="h100", sku_gpus=2)
    stale = NodeFactory(virtual_cluster=vc, name="gpu-gone")
    NodeFactory(virtual_cluster=vc, name="gpu-b", sku_capacity=1, gpu_type="old")
    for item in (node("gpu-a"), node("gpu-b"), node("gpu-x", vc="a100"), node("gpu-1", gpus="1")):
        kube.put("nodes", item["metadata"]["name"], item, namespace=None)
    out = io.StringIO()
    call_command("import_nodes", "--prune", stdout=out)
    nodes = {n.name: n for n in Node.objects.all()}
    assert nodes["gpu-a"].sku_capacity == 4 and nodes["gpu-a"].virtual_cluster == vc
    assert nodes["gpu-b"].sku_capacity == 4 and nodes["gpu-b"].gpu_type == "NVIDIA-H100-80GB-HBM3"
    assert "gpu-x" not in nodes and "gpu-1" not in nodes
    stale.refresh_from_db()
    assert not stale.schedulable
    text = out.getvalue()
    assert "skipped gpu-x: no virtual cluster named 'a100'" in text
    assert "skipped gpu-1: 1 GPUs make no SKU of 2 GPUs" in text
    assert "cordoned gpu-gone" in text

    call_command("import_nodes", "--create-virtual-clusters", "--dry-run", stdout=io.StringIO())
    assert not Node.objects.filter(name="gpu-x").exists()
    call_command("import_nodes", "--create-virtual-clusters", stdout=io.StringIO())
    assert Node.objects.get(name="gpu-x").virtual_cluster.name == "a100"


@pytest.mark.django_db
def test_import_this_machine(settings, monkeypatch):
    vc = VirtualClusterFactory(name="local")
    settings.LOCAL_GPU_COUNT = 3
    monkeypatch.setattr(gpus.shutil, "which", lambda name: None)
    call_command("import_nodes", "--local", "--virtual-cluster", "local", "--name", "workstation", stdout=io.StringIO())
    machine = Node.objects.get(name="workstation")
    assert (machine.virtual_cluster, machine.sku_capacity, machine.schedulable) == (vc, 3, True)
