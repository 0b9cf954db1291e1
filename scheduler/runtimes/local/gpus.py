"""The GPUs of this machine, as ``nvidia-smi`` lists them (or a configured count without one)."""

import shutil
import subprocess
from dataclasses import dataclass

from django.conf import settings

NVIDIA_SMI_QUERY = ["--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class LocalGpu:
    index: int
    uuid: str = ""
    name: str = ""
    memory_mib: int = 0


def parse_nvidia_smi(text):
    """The GPUs in the output of ``nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits``.

    Blank lines are skipped; a line that does not parse raises ValueError (a changed output
    format must not silently lose GPUs). Sorted by index.
    """
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 4:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        index, uuid, memory = fields[0], fields[1], fields[-1]
        name = ", ".join(fields[2:-1])
        gpus.append(LocalGpu(index=int(index), uuid=uuid, name=name, memory_mib=int(float(memory))))
    return sorted(gpus, key=lambda gpu: gpu.index)


def local_gpus():
    """This machine's GPUs: from ``nvidia-smi`` when it is installed, else ``LOCAL_GPU_COUNT`` anonymous ones."""
    binary = shutil.which("nvidia-smi")
    if binary:
        result = subprocess.run([binary, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            return parse_nvidia_smi(result.stdout)
    return [LocalGpu(index=i) for i in range(settings.LOCAL_GPU_COUNT)]
