"""``nvidia-smi`` parsing, and the configured count without it."""

import pytest

from scheduler.runtimes.local import gpus
from scheduler.runtimes.local.gpus import LocalGpu, local_gpus, parse_nvidia_smi

H200_OUTPUT = """\
1, GPU-5e2a7c1b-0000-1111-2222-333344445555, NVIDIA H200, 143771
0, GPU-0f9d8e7c-aaaa-bbbb-cccc-ddddeeeeffff, NVIDIA H200, 143771

"""


def test_parse_nvidia_smi_sorted_by_index():
    assert parse_nvidia_smi(H200_OUTPUT) == [
        LocalGpu(index=0, uuid="GPU-0f9d8e7c-aaaa-bbbb-cccc-ddddeeeeffff", name="NVIDIA H200", memory_mib=143771),
        LocalGpu(index=1, uuid="GPU-5e2a7c1b-0000-1111-2222-333344445555", name="NVIDIA H200", memory_mib=143771),
    ]


def test_a_name_with_a_comma_is_kept_whole():
    (gpu,) = parse_nvidia_smi("0, GPU-1, NVIDIA A100-SXM4-80GB, PCIe, 81920\n")
    assert gpu.name == "NVIDIA A100-SXM4-80GB, PCIe" and gpu.memory_mib == 81920


def test_no_gpus_is_an_empty_list():
    assert parse_nvidia_smi("") == []


@pytest.mark.parametrize("line", ["No devices were found", "zero, GPU-1, H200, 1"])
def test_output_that_does_not_parse_is_an_error(line):
    with pytest.raises(ValueError):
        parse_nvidia_smi(line)


def test_without_nvidia_smi_the_configured_count(settings, monkeypatch):
    settings.LOCAL_GPU_COUNT = 3
    monkeypatch.setattr(gpus.shutil, "which", lambda name: None)
    assert [gpu.index for gpu in local_gpus()] == [0, 1, 2]
