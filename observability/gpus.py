"""How busy the GPUs are, where it can be read: ``nvidia-smi`` on the local runtime's machine, the DCGM
exporter's ``DCGM_FI_DEV_GPU_UTIL`` through Prometheus (``DCGM_PROMETHEUS_URL``) on Kubernetes.

Both answer {(machine name or None, GPU index): (utilisation %, memory used MiB or None)}; None when
nothing can be read (no nvidia-smi, no Prometheus configured or reachable): then nothing is sampled.
"""

import logging
import shutil
import subprocess

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

NVIDIA_SMI_QUERY = ["--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
DCGM_QUERY = "DCGM_FI_DEV_GPU_UTIL"


def parse_nvidia_smi_utilisation(text):
    """{(None, index): (utilisation, memory used)} from ``nvidia-smi --query-gpu=index,utilization.gpu,memory.used``.

    A GPU that answers ``[N/A]`` or ``[Not Supported]`` is left out; a line of another shape raises ValueError.
    """
    readings = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 3:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        try:
            readings[(None, int(fields[0]))] = (float(fields[1]), int(float(fields[2])))
        except ValueError:
            continue
    return readings


def read_nvidia_smi():
    binary = shutil.which("nvidia-smi")
    if not binary:
        return None
    try:
        result = subprocess.run([binary, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        logger.warning("nvidia-smi could not be run", exc_info=True)
        return None
    if result.returncode != 0:
        logger.warning("nvidia-smi answered %s: %s", result.returncode, result.stderr.strip())
        return None
    return parse_nvidia_smi_utilisation(result.stdout)


def parse_dcgm(payload):
    """{(Hostname, gpu index): (utilisation, None)} from a Prometheus instant query of DCGM_FI_DEV_GPU_UTIL."""
    readings = {}
    for series in payload.get("data", {}).get("result", []):
        labels = series.get("metric", {})
        try:
            host, index = labels.get("Hostname") or labels.get("kubernetes_node"), int(labels["gpu"])
            readings[(host, index)] = (float(series["value"][1]), None)
        except (KeyError, ValueError, TypeError, IndexError):
            continue
    return readings


def read_dcgm():
    url = settings.DCGM_PROMETHEUS_URL
    if not url:
        return None
    try:
        response = httpx.get(f"{url.rstrip('/')}/api/v1/query", params={"query": DCGM_QUERY}, timeout=10)
        response.raise_for_status()
        return parse_dcgm(response.json())
    except (httpx.HTTPError, ValueError):
        logger.warning("the DCGM metrics could not be read from %s", url, exc_info=True)
        return None


def read_utilisation():
    """This deployment's GPU readings: nvidia-smi for the local runtime, DCGM for Kubernetes."""
    return read_nvidia_smi() if settings.DEPLOY_RUNTIME == "local" else read_dcgm()
