#!/usr/bin/env python3
"""Stress one Celery broker URL as the embedded stack uses it; print one JSON line.

    .venv/bin/python scripts/broker_stress.py --broker URL --minutes 5 [--producers 4] [--rate 20]

A throw-away Celery app (not the portal's: no Django, no database) with one task, ``record``, that appends
``<id> <sent_at> <received_at>`` to a file. One worker with embedded beat (``worker --beat``, prefork,
concurrency 2, as run-portal used to run it; beat sends ``record`` every second too) consumes while
``--producers`` processes each send ``--rate`` tasks a second for ``--minutes``. Afterwards the worker gets
up to 60 s to drain the queue, then:

- ``sent``: tasks the producers sent without an error; ``send_errors``: sends that raised.
- ``received``: distinct ids of sent tasks the worker ran; ``lost``: sent ids never run.
- ``duplicates``: runs beyond the first of an id (redeliveries).
- ``worker_exits``: times the worker process ended on its own (it is restarted at once, as a supervisor would);
  ``exit_reasons``: the CRITICAL lines of its log.
- ``latency_p50_ms``/``latency_p99_ms``/``latency_max_ms``: received_at - sent_at.
- ``beat_runs``: beat's ``record`` runs (about one a second while the worker lives).
"""

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from celery import Celery

OUT = os.environ.get("STRESS_OUT", "/tmp/broker-stress-out")
app = Celery("broker_stress", broker=os.environ.get("STRESS_BROKER", "memory://"))
_options = json.loads(os.environ.get("STRESS_TRANSPORT_OPTIONS", "{}"))
app.conf.update(
    broker_transport_options=_options,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    beat_schedule={"beat-record": {"task": "broker_stress.record", "schedule": 1.0, "args": ("beat", 0.0)}},
)


@app.task(name="broker_stress.record")
def record(ident, sent_at):
    line = f"{ident} {sent_at} {time.time()}\n"
    fd = os.open(os.path.join(OUT, "received.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _produce(index, seconds, rate, out):
    sent = errors = 0
    deadline = time.monotonic() + seconds
    n = 0
    with open(os.path.join(out, f"sent-{index}.log"), "a") as log:
        while time.monotonic() < deadline:
            ident = f"p{index}-{n}"
            n += 1
            try:
                record.apply_async((ident, time.time()))
                log.write(ident + "\n")
                log.flush()
                sent += 1
            except Exception as error:  # noqa: BLE001 - counted, the run goes on
                errors += 1
                print(f"producer {index}: {error!r}", file=sys.stderr)
            time.sleep(1.0 / rate)
    return sent, errors


def _start_worker(env, workdir, log):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "broker_stress", "worker", "--beat", "--concurrency", "2",
         "--loglevel", "INFO", "-s", str(workdir / "beat-schedule"), "-n", f"stress{os.getpid()}@%h"],
        cwd=Path(__file__).resolve().parent, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _received(out):
    runs = {}
    latencies = []
    beat = 0
    path = Path(out) / "received.log"
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            if parts[0] == "beat":
                beat += 1
                continue
            runs[parts[0]] = runs.get(parts[0], 0) + 1
            if runs[parts[0]] == 1:
                latencies.append((float(parts[2]) - float(parts[1])) * 1000)
    return runs, latencies, beat


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--transport-options", default="{}")
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=20, help="tasks a second per producer")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="broker-stress-"))
    out = workdir / "out"
    out.mkdir()
    env = {**os.environ, "STRESS_BROKER": args.broker, "STRESS_OUT": str(out),
           "STRESS_TRANSPORT_OPTIONS": args.transport_options, "PYTHONUNBUFFERED": "1"}
    os.environ.update(env)
    app.conf.broker_url = args.broker
    app.conf.broker_transport_options = json.loads(args.transport_options)

    worker_log_path = workdir / "worker.log"
    worker_log = open(worker_log_path, "ab")  # noqa: SIM115
    worker = _start_worker(env, workdir, worker_log)
    exits = 0
    seconds = args.minutes * 60
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.producers) as pool:
        result = pool.starmap_async(_produce, [(i, seconds, args.rate, str(out)) for i in range(args.producers)])
        while not result.ready():
            if worker.poll() is not None:
                exits += 1
                worker = _start_worker(env, workdir, worker_log)
            time.sleep(0.5)
        totals = result.get()
    sent_ids = set()
    for path in out.glob("sent-*.log"):
        sent_ids.update(path.read_text().split())
    drain_deadline = time.monotonic() + 60
    while time.monotonic() < drain_deadline:
        if worker.poll() is not None:
            exits += 1
            worker = _start_worker(env, workdir, worker_log)
        runs, _, _ = _received(out)
        if sent_ids <= set(runs):
            break
        time.sleep(1)
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    runs, latencies, beat = _received(out)
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 1) if latencies else None

    critical = [line.strip() for line in worker_log_path.read_text(errors="replace").splitlines()
                if "CRITICAL" in line or "Unrecoverable" in line][:5]
    print(json.dumps({
        "broker": args.broker, "minutes": args.minutes, "producers": args.producers, "rate": args.rate,
        "sent": sum(s for s, _ in totals), "send_errors": sum(e for _, e in totals),
        "received": len(sent_ids & set(runs)), "lost": len(sent_ids - set(runs)),
        "duplicates": sum(n - 1 for n in runs.values()), "worker_exits": exits,
        "latency_p50_ms": pct(0.5), "latency_p99_ms": pct(0.99),
        "latency_max_ms": round(latencies[-1], 1) if latencies else None,
        "beat_runs": beat, "exit_reasons": critical, "workdir": str(workdir),
    }))


if __name__ == "__main__":
    main()
