"""What the endpoint gateway adds to streaming calls; prints ONE JSON line. Run it as ``scripts/bench-gateway``.

    ./scripts/bench-gateway [--streams 64] [--requests 640] [--max-tokens 64] [--token-delay 0.02]
                            [--first-token-delay 0] [--rounds 2] [--port P] [--gateway-cpu N] [--profile PATH]

In a throwaway directory (its own SQLite database) it starts the demo model server, makes the world the runtime
would leave behind (a running task ``/bench/demo/`` whose current run has one ready instance at the demo server's
address, and an API key of a member of its project, which the gateway checks in memory), and starts the gateway
as production does, a process of its own: ``manage.py run_gateway`` (uvicorn, uvloop, httptools), pinned to one
core (``--gateway-cpu``, the last one by default); this process (the client) and the demo server share the others.

The client is the evaluations' load generator (``evaluations.loadgen``: its ``warm_up`` and ``send_request``, TTFT
at the first token of an httpx stream), driven as ``--streams`` clients, each an httpx client of its own with one
connection, each sending its requests one after another until ``--requests`` are done; client n starts n steps of
one request's length / streams in, so the clients are out of step as real ones are (the demo model's answers all
last alike: started together, they would end together and send again all at once). The same clients, requests and
key go straight to the demo server ("direct") and through the gateway, one after the other, ``--rounds`` times
(direct first), after one uncounted warm-up of each. Each side's figures are medians over the rounds:

- ``rps``, ``tokens_per_s``: completed requests, and their output tokens, per second of the round;
- ``ttft_p50_ms``, ``ttft_p99_ms``, ``e2el_p50_ms`` (the whole answer); ``completed`` and ``errors`` (summed);
- ``client_cpu_percent``, ``model_cpu_percent``, ``gateway_cpu_percent``: each process's CPU time over the round's
  wall time (near 100 for the client and model together, the client's core is what was measured, not the gateway).

Then ``added_ttft_p50_ms`` / ``added_ttft_p99_ms`` (the gateway's figure less the direct one), ``throughput_ratio``
(the lower of the gateway's rps and tokens/s over the direct ones), ``gateway_cpu_ms_per_request`` and
``calibration_seconds`` (bench_scheduler's fixed pure-Python loop: how fast the machine was).

``GATEWAY_REFRESH_SECONDS`` and ``GATEWAY_FLUSH_SECONDS`` in the environment reach the gateway (defaults: the
site's). ``--profile PATH`` runs the gateway under cProfile, its stats written there when it stops (the timings are
then the profiler's). Exits 1 when a request failed or did not complete, so CI can run a short version
(``--streams 8 --requests 40``).
"""

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluations import loadgen  # noqa: E402 - plain I/O, no Django: importable before the settings
from evaluations.metrics import summarize  # noqa: E402

PROJECT, TASK, MODEL = "bench", "demo", "demo-llm"
MEDIANS = ("rps", "tokens_per_s", "ttft_p50_ms", "ttft_p99_ms", "e2el_p50_ms", "client_cpu_percent",
           "model_cpu_percent", "gateway_cpu_percent")

SETUP = """
import json
from django.contrib.auth import get_user_model
from clusters.models import Node, Project, VirtualCluster
from endpoints.services import api_key_create
from tasks.models import InstanceStatus, Task, TaskInstance
from tasks.services import bulk_current_runs
from tasks.states import Status

user = get_user_model().objects.create_user("caller", password="unused-password-1")
project = Project.objects.create(name="%(project)s")
project.members.add(user)
vc = VirtualCluster.objects.create(name="bench-vc", gpu_type="NVIDIA-H100", sku_gpus=1, sku_cpus=12, sku_memory_gib=120)
node = Node.objects.create(name="bench-node", virtual_cluster=vc, gpu_type="NVIDIA-H100", sku_capacity=8)
task = Task.objects.create(
    name="%(task)s", project=project, virtual_cluster=vc, owner=user, image="registry.example.com/llm/demo:1",
    status=Status.RUNNING,
)
run = bulk_current_runs([task])[task.pk]
TaskInstance.objects.create(
    task=task, run=run, index=0, node=node, node_name=node.name, gpu_type=node.gpu_type, sku_count=1, gpu_count=1,
    gpu_indices=[0], status=InstanceStatus.READY, handle="1", address="127.0.0.1:%(port)d",
)
print(json.dumps({"task": task.pk, "key": api_key_create(user=user, name="bench")[1]}))
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tail(path, size=3000):
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


def wait_for(url, ok, process, log, headers=None, deadline=60):
    """Poll ``url`` until ``ok(response)``; RuntimeError (with the process's log) if it exits or time runs out."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}:\n{tail(log)}")
        try:
            if ok(httpx.get(url, headers=headers, timeout=2, trust_env=False)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {deadline} s:\n{tail(log)}")


def stop(process, timeout=30):
    # SIGINT: uvicorn shuts down as for SIGTERM, then raises it again: a KeyboardInterrupt, after which cProfile
    # (--profile) still writes its stats, where SIGTERM's default action would end the process first.
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start(options, env, tmp, processes):
    """The demo server, the world and the gateway, started: ``(demo, gateway, direct_url, gateway_url, key)``."""
    demo_port, gateway_port = free_port(), options.port or free_port()
    with open(tmp / "demo.log", "wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "demo_model", "--port", str(demo_port), "--model", MODEL,
             "--token-delay", str(options.token_delay), "--first-token-delay", str(options.first_token_delay)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    processes.append((demo, tmp / "demo.log"))
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SETUP % {"project": PROJECT, "task": TASK, "port": demo_port}],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )
    key = json.loads(made.stdout.strip().splitlines()[-1])["key"]
    profiler = ["-m", "cProfile", "-o", str(Path(options.profile).resolve())] if options.profile else []
    with open(tmp / "gateway.log", "wb") as out:
        gateway = subprocess.Popen(
            [sys.executable, *profiler, "manage.py", "run_gateway", "--host", "127.0.0.1", "--port", str(gateway_port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=lambda: os.sched_setaffinity(0, options.gateway_cpus),
        )
    processes.append((gateway, tmp / "gateway.log"))
    direct_url = f"http://127.0.0.1:{demo_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}/{PROJECT}/{TASK}"
    wait_for(f"{direct_url}/health", lambda r: r.status_code == 200, demo, tmp / "demo.log")
    wait_for(f"http://127.0.0.1:{gateway_port}/healthz",
             lambda r: r.status_code == 200 and r.json()["routes"] and r.json()["keys"], gateway, tmp / "gateway.log")
    wait_for(f"{gateway_url}/v1/models", lambda r: r.status_code == 200, gateway, tmp / "gateway.log",
             {"Authorization": f"Bearer {key}"})
    return demo, gateway, direct_url, gateway_url, key


async def drive(base_url, headers, spec, stagger):
    """``spec.concurrency`` clients of one connection each (warmed by the load generator), each sending requests
    one after another until ``spec.request_count`` are done, the n-th starting ``n * stagger`` seconds in: the
    summary of the records, timed from the first request."""
    spec = dataclasses.replace(spec, base_url=base_url)
    one_each = dataclasses.replace(spec, concurrency=1)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(limits=limits, timeout=spec.timeout, headers=headers, trust_env=False)
               for _stream in range(spec.concurrency)]
    records, numbers = [], iter(range(spec.request_count))
    try:
        await asyncio.gather(*(loadgen.warm_up(client, one_each) for client in clients))
        started = time.perf_counter()

        async def stream(index, client):
            await asyncio.sleep(started + index * stagger - time.perf_counter())
            for number in numbers:
                records.append(await loadgen.send_request(client, spec, spec.prompts[number % len(spec.prompts)]))

        await asyncio.gather(*(stream(index, client) for index, client in enumerate(clients)))
        duration = time.perf_counter() - started
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    return summarize(records, duration)


def measure(options, demo, gateway, direct_url, gateway_url, key):
    """Each side's figures of each round, and the gateway's CPU seconds over its rounds."""
    headers = {"Authorization": f"Bearer {key}"}  # on both sides: the same bytes sent (the gateway drops it)
    spec = loadgen.LoadSpec(
        base_url="", endpoint_kind="chat", model=MODEL, prompts=loadgen.BUILTIN_PROMPTS,
        max_tokens=options.max_tokens, request_count=options.requests, concurrency=options.streams,
        request_rate=None, timeout=options.timeout,
    )
    stagger = (options.first_token_delay + options.max_tokens * options.token_delay) / options.streams
    for url in (direct_url, gateway_url):  # code paths, threads and pools warmed, not counted
        uvloop.run(drive(url, headers, dataclasses.replace(spec, request_count=options.streams), stagger))
    pids = {"client": os.getpid(), "model": demo.pid, "gateway": gateway.pid}
    runs, gateway_cpu = {"direct": [], "gateway": []}, 0.0
    for _round in range(options.rounds):
        for name, url in (("direct", direct_url), ("gateway", gateway_url)):
            before, started = {who: cpu_seconds(pid) for who, pid in pids.items()}, time.perf_counter()
            summary = uvloop.run(drive(url, headers, spec, stagger))
            wall = time.perf_counter() - started
            used = {who: cpu_seconds(pid) - before[who] for who, pid in pids.items()}
            gateway_cpu += used["gateway"] if name == "gateway" else 0.0
            runs[name].append({
                "rps": summary["request_throughput"], "tokens_per_s": summary["output_throughput"],
                "ttft_p50_ms": summary["ttft_ms"]["p50"], "ttft_p99_ms": summary["ttft_ms"]["p99"],
                "e2el_p50_ms": summary["e2el_ms"]["p50"], "completed": summary["completed"],
                "errors": summary["failed"], "first_errors": summary["errors"],
                **{f"{who}_cpu_percent": 100 * seconds / wall for who, seconds in used.items()},
            })
    return runs, gateway_cpu


def side(rounds):
    """The medians over the rounds (counts summed, the first errors kept)."""
    out = {}
    for name in MEDIANS:
        values = [r[name] for r in rounds if r[name] is not None]
        out[name] = round(statistics.median(values), 3) if values else None
    out["completed"] = sum(r["completed"] for r in rounds)
    out["errors"] = sum(r["errors"] for r in rounds)
    out["first_errors"] = [e for r in rounds for e in r["first_errors"]][:5]
    return out


def difference(gateway, direct):
    return None if gateway is None or direct is None else round(gateway - direct, 3)


def ratio(gateway, direct):
    return round(gateway / direct, 3) if direct else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=64, help="concurrent streaming clients")
    parser.add_argument("--requests", type=int, default=640, help="requests per side and round")
    parser.add_argument("--max-tokens", type=int, default=64)
    # 50 tokens a second a stream, 3200 in all: what a busy replica streams to 64 clients.
    parser.add_argument("--token-delay", type=float, default=0.02, help="the demo model's seconds between tokens")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--rounds", type=int, default=2, help="direct then gateway, this many times")
    parser.add_argument("--port", type=int, default=0, help="the gateway's port (0: a free one)")
    parser.add_argument("--gateway-cpu", type=int, default=None, help="the core the gateway gets (default: the last)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    parser.add_argument("--profile", default=None, help="run the gateway under cProfile, its stats written here")
    options = parser.parse_args()
    if min(options.streams, options.requests, options.max_tokens, options.rounds) < 1:
        parser.error("--streams, --requests, --max-tokens and --rounds must be at least 1")

    # The gateway gets one core of its own; the client (this process) and the demo server the others.
    cpus = sorted(os.sched_getaffinity(0))
    options.gateway_cpus = others = set(cpus)
    if len(cpus) > 1:
        gateway_cpu = cpus[-1] if options.gateway_cpu is None else options.gateway_cpu
        if gateway_cpu not in cpus:
            parser.error(f"--gateway-cpu {gateway_cpu} is not one of this process's cores {cpus}")
        options.gateway_cpus, others = {gateway_cpu}, set(cpus) - {gateway_cpu}
        os.sched_setaffinity(0, others)  # inherited by the demo server and the client's threads

    with tempfile.TemporaryDirectory(prefix="dp-gateway-bench-") as tmp:
        tmp = Path(tmp)
        # Not even empty: prometheus_client counts a PROMETHEUS_MULTIPROC_DIR of "" as set and writes its files into
        # the working directory.
        env = {
            **{name: value for name, value in os.environ.items() if name.upper() != "PROMETHEUS_MULTIPROC_DIR"},
            "DEBUG": "false", "SECRET_KEY": "bench-gateway-" + "x" * 40, "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}", "DEPLOY_VAR_DIR": str(tmp / "var"),
            "LOCAL_RUNTIME_DIR": str(tmp / "local"), "DEPLOY_RUNTIME": "local", "CELERY_BROKER_URL": "memory://",
        }
        processes = []
        try:
            runs, gateway_cpu = measure(options, *start(options, env, tmp, processes))
        except Exception:
            for process, log in processes:
                sys.stderr.write(f"--- {process.args[:4]}:\n{tail(log)}\n")
            raise
        finally:
            for process, _log in reversed(processes):
                stop(process)
        # The machine's speed, by the loop every benchmark here prints (it lives with bench_scheduler).
        os.environ.update(env, DJANGO_SETTINGS_MODULE="deploy_portal.settings")
        import django

        django.setup()
        from scheduler.management.commands.bench_scheduler import calibration

    direct, through = side(runs["direct"]), side(runs["gateway"])
    result = {
        "streams": options.streams, "requests": options.requests, "rounds": options.rounds,
        "max_tokens": options.max_tokens, "token_delay": options.token_delay,
        "first_token_delay": options.first_token_delay, "direct": direct, "gateway": through,
        "added_ttft_p50_ms": difference(through["ttft_p50_ms"], direct["ttft_p50_ms"]),
        "added_ttft_p99_ms": difference(through["ttft_p99_ms"], direct["ttft_p99_ms"]),
        "rps_ratio": ratio(through["rps"], direct["rps"]),
        "tokens_ratio": ratio(through["tokens_per_s"], direct["tokens_per_s"]),
        "gateway_cpu_ms_per_request": ratio(1000 * gateway_cpu, through["completed"]),
        "cpus": {"gateway": sorted(options.gateway_cpus), "client_and_model": sorted(others)},
        "calibration_seconds": calibration(),
    }
    ratios = [r for r in (result["rps_ratio"], result["tokens_ratio"]) if r is not None]
    result["throughput_ratio"] = min(ratios) if ratios else None
    if options.profile:
        result["profile"] = str(Path(options.profile).resolve())
    print(json.dumps(result))
    expected = options.requests * options.rounds
    return 0 if all(s["errors"] == 0 and s["completed"] == expected for s in (direct, through)) else 1


if __name__ == "__main__":
    sys.exit(main())
