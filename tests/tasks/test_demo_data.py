"""``load_demo_data``: the demo machine has this machine's GPUs, as the local runtime will hand them out."""

import io
import stat

import pytest
from django.core.management import call_command

from clusters.models import Node, VirtualCluster
from tasks.models import Task

pytestmark = pytest.mark.django_db


def fake_nvidia_smi(directory, lines):
    script = directory / "nvidia-smi"
    script.write_text("#!/bin/sh\ncat <<'EOF'\n" + "".join(f"{line}\n" for line in lines) + "EOF\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_the_demo_machine_has_the_gpus_nvidia_smi_lists(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, ["0, GPU-aaaa, NVIDIA H200, 143771"])
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    call_command("load_demo_data", stdout=io.StringIO())
    node = Node.objects.get()
    assert (node.sku_capacity, node.gpu_type, VirtualCluster.objects.get().gpu_type) == (1, "NVIDIA H200", "NVIDIA H200")
    # The demo tasks are sized to fit it.
    assert sorted(Task.objects.values_list("sku_count", flat=True)) == [1, 1]


def test_without_nvidia_smi_the_configured_count(tmp_path, monkeypatch, settings):
    settings.LOCAL_GPU_COUNT = 4
    monkeypatch.setenv("PATH", str(tmp_path))
    call_command("load_demo_data", stdout=io.StringIO())
    assert Node.objects.get().sku_capacity == 4
    assert sorted(Task.objects.values_list("sku_count", flat=True)) == [1, 2]
