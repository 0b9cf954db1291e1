"""Soak the embedded stack as users drive it, through HTTP only; print ONE JSON line. Run it as ``scripts/soak``.

    ./scripts/soak --minutes 60 [--port 8150] [--gpus 4] [--tasks 8] [--nodeports 33500-33999]

It starts ``./scripts/run-portal`` itself (a session of its own; a fresh var dir under /tmp with its own
SQLite database, Redis socket and local-runtime dir; the portal on 127.0.0.1:--port; task ports from
--nodeports; ``LOCAL_GPU_COUNT=--gpus``), logs in as ``demo`` and ``manager`` (``POST /api/v1/auth/token/``),
creates --tasks one-GPU tasks besides the two demo tasks (more than the VC's GPUs: a queue forms), and for
--minutes does what users do, about two operations a second, each chosen at random: start a task that
may start, stop one that runs / deploys / queues, pin and force-start a queued task as the manager (GET
preview, then POST), start an evaluation of a running task (a small body), read a running task's
instances and the last lines of an instance's log, read the queue. Then it sends SIGINT to run-portal's
whole process group (as a terminal's Ctrl-C), runs ``./scripts/run-portal --stop-deployments`` and counts
what is left. Only 127.0.0.1 is contacted; it stops by itself (a hard bound of --minutes + 5 min).

The JSON line (all counts; the run exits 1 unless worker_crashes, stuck_tasks, lost_messages and
orphan_processes are all 0):

- ``minutes``: as asked. ``operations``: user actions sent (start, stop, pin, force start, evaluation,
  log read, queue read), whatever their answer; ``http_errors``: answers 5xx or no answer at all
  (a 4xx refusal, e.g. starting a task that just became queued, is an answer, not an error).
- ``worker_restarts``: ``spawned:`` lines of supervisord's log beyond the first spawn of each program;
  ``worker_crashes``: ``exited: … (… not expected)`` lines of that log (any program: broker, worker,
  beat, evaluations, web), i.e. deaths the supervisor had to repair.
- ``stuck_tasks``: tasks that, at some poll, had been ``deploying`` longer than --stuck-seconds (90), or
  ``queued`` longer than --stuck-seconds while the VC's free GPUs (its capacity minus the GPUs of its
  deploying and running tasks, as the task list shows them) were enough for it the whole time.
- ``lost_messages``: accepted starts (2xx) whose task was still in the status it had before the start
  --lost-seconds (60) later and had not changed in between; accepted stops of a task holding GPUs whose
  instance processes (the local runtime's records) were still alive --lost-seconds later (the teardown
  message never handled); accepted evaluations still ``pending`` after twice --lost-seconds.
- ``orphan_processes``: processes still alive once the stack has stopped and ``--stop-deployments`` has
  run: any process of run-portal's session, and any process whose command line names the soak's var dir
  (model servers carry their runtime dir in theirs); plus model-server processes alive when run-portal
  exited that its exit message did not list (left behind without the user being told).
- ``left_running_listed``: the deployments run-portal's exit message listed (they keep running by design).
- ``var_dir``: where the logs are (kept).
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from _deployments import alive as alive_records  # noqa: E402


def proc_cmdlines():
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/cmdline").read_bytes()
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] in ("Z", "X"):
                continue
            yield int(entry), int(fields[3]), raw.replace(b"\0", b" ").decode(errors="replace")  # pid, sid, cmd


class Soak:
    def __init__(self, args):
        self.args = args
        self.var = Path(tempfile.mkdtemp(prefix="soak-", dir=args.tmp))
        self.runtime_dir = self.var / "local-runtime"
        self.base = f"http://127.0.0.1:{args.port}"
        self.env = {
            **os.environ,
            "DEPLOY_VAR_DIR": str(self.var),
            "DATABASE_URL": f"sqlite:///{self.var / 'db.sqlite3'}",
            "PORTAL_ADDR": f"127.0.0.1:{args.port}",
            "GATEWAY_ADDR": f"127.0.0.1:{args.port + 1}",
            "NODEPORT_RANGE": args.nodeports,
            "LOCAL_GPU_COUNT": str(args.gpus),
            "LOCAL_RUNTIME_DIR": str(self.runtime_dir),
            "LOCAL_STOP_GRACE_SECONDS": "3",
            "SCHEDULE_INTERVAL_SECONDS": "10",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("CELERY_BROKER_URL", None)
        self.env.pop("DEPLOY_RUNTIME", None)
        self.counts = {"operations": 0, "http_errors": 0}
        self.stuck, self.lost = set(), []
        self.since = {}  # task id -> (status, since, fits the whole time)
        self.pending_checks = []  # (deadline, kind, data)
        self.client = httpx.Client(base_url=self.base, timeout=30)

    # -- HTTP --------------------------------------------------------------------------
    def call(self, method, path, who="demo", op=True, **kw):
        if op:
            self.counts["operations"] += 1
        try:
            answer = self.client.request(method, path, headers={"Authorization": f"Token {self.tokens[who]}"}, **kw)
        except httpx.HTTPError as error:
            self.counts["http_errors"] += 1
            self.note(f"{method} {path}: {error!r}")
            return None
        if answer.status_code >= 500:
            self.counts["http_errors"] += 1
            self.note(f"{method} {path}: {answer.status_code} {answer.text[:200]}")
        return answer

    def note(self, line):
        with open(self.var / "soak.log", "a") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def tasks(self):
        answer = self.call("GET", "/api/v1/tasks/", who="manager", op=False, params={"page_size": 100})
        if answer is None or answer.status_code != 200:
            return None
        data = answer.json()
        items = data["results"] if isinstance(data, dict) else data
        while isinstance(data, dict) and data.get("next"):
            answer = self.call("GET", data["next"].replace(self.base, ""), who="manager", op=False)
            if answer is None or answer.status_code != 200:
                return None
            data = answer.json()
            items += data["results"]
        return {t["id"]: t for t in items}

    # -- the stack ---------------------------------------------------------------------
    def start_stack(self):
        self.stack_log = open(self.var / "run-portal.log", "ab")  # noqa: SIM115
        self.stack = subprocess.Popen([str(ROOT / "scripts/run-portal")], cwd=ROOT, env=self.env,
                                      stdout=self.stack_log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.stack.poll() is not None:
                sys.exit(f"run-portal exited with {self.stack.returncode}; see {self.var / 'run-portal.log'}")
            try:
                answer = httpx.post(f"{self.base}/api/v1/auth/token/", data={"username": "demo", "password": "demo-pass-123"})
                if answer.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            sys.exit("the portal did not answer within 180 s")
        self.tokens = {}
        for who, password in (("demo", "demo-pass-123"), ("manager", "manager-pass-123")):
            answer = httpx.post(f"{self.base}/api/v1/auth/token/", data={"username": who, "password": password})
            self.tokens[who] = answer.json()["token"]

    def stop_stack(self):
        sid = self.stack.pid
        os.killpg(sid, signal.SIGINT)
        try:
            self.stack.wait(30)
        except subprocess.TimeoutExpired:
            self.note("run-portal still running 30 s after SIGINT")
        self.stack_log.flush()
        exit_text = (self.var / "run-portal.log").read_text(errors="replace")
        listed = {int(line.split("pid ")[1].split(",")[0]) for line in exit_text.splitlines()
                  if line.startswith("  task ") and "pid " in line}
        alive_now = {record["pid"] for record in alive_records(self.runtime_dir)}
        unlisted = alive_now - listed
        if unlisted:
            self.note(f"model servers alive but not listed on exit: {sorted(unlisted)}")
        stop = subprocess.run([str(ROOT / "scripts/run-portal"), "--stop-deployments"], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)
        self.note(f"--stop-deployments: rc {stop.returncode}: {stop.stdout[-2000:]} {stop.stderr[-2000:]}")
        time.sleep(1)  # the runtime already waited for each group; this is only for /proc to settle
        left = [(pid, cmd) for pid, psid, cmd in proc_cmdlines()
                if pid != os.getpid() and (psid == sid or str(self.var) in cmd)]
        for pid, cmd in left:
            self.note(f"left behind: {pid} {cmd[:200]}")
        return len(listed), len({pid for pid, _ in left} | unlisted)

    # -- the checks --------------------------------------------------------------------
    def observe(self, tasks, capacity):
        now = time.monotonic()
        used = sum(t["sku_count"] * t["replicas"] for t in tasks.values() if t["status"] in ("deploying", "running"))
        free = capacity - used
        for tid, task in tasks.items():
            status = task["status"]
            fits = status == "queued" and task["sku_count"] * task["replicas"] <= free
            before = self.since.get(tid)
            if before is None or before[0] != status:
                self.since[tid] = (status, now, fits)
            else:
                self.since[tid] = (status, before[1], before[2] and fits)
            status, since, fit_all_along = self.since[tid]
            age = now - since
            if status == "deploying" and age > self.args.stuck_seconds:
                self.flag_stuck(tid, f"deploying for {age:.0f} s")
            if status == "queued" and fit_all_along and age > self.args.stuck_seconds:
                self.flag_stuck(tid, f"queued for {age:.0f} s while {free} GPUs were free")
        for check in list(self.pending_checks):
            deadline, kind, data = check
            if now < deadline:
                continue
            self.pending_checks.remove(check)
            if kind == "start":
                tid, before_status, changes_at_start = data
                if tid in tasks and tasks[tid]["status"] == before_status and self.changes.get(tid, 0) == changes_at_start:
                    self.lost.append(("start", tid))
                    self.note(f"LOST start of task {tid}: still {before_status}")
            elif kind == "stop":
                tid, instance_ids = data
                still = [r for r in alive_records(self.runtime_dir) if r["instance_id"] in instance_ids]
                if still:
                    self.lost.append(("stop", tid))
                    self.note(f"LOST stop of task {tid}: instances {instance_ids} alive")
            elif kind == "evaluation":
                tid, eid = data
                answer = self.call("GET", f"/api/v1/evaluations/{eid}/", op=False)
                if answer is not None and answer.status_code == 200 and answer.json().get("status") == "pending":
                    self.lost.append(("evaluation", eid))
                    self.note(f"LOST evaluation {eid} of task {tid}: still pending")

    def flag_stuck(self, tid, why):
        if tid not in self.stuck:
            self.stuck.add(tid)
            self.note(f"STUCK task {tid}: {why}")

    # -- the users ---------------------------------------------------------------------
    def run(self):
        args = self.args
        hard_deadline = time.monotonic() + args.minutes * 60 + 300
        self.start_stack()
        tasks = self.tasks()
        template = next(iter(tasks.values()))
        body = {key: template[key] for key in ("project", "task_type", "image", "virtual_cluster", "expose_port",
                                              "container_port", "description", "env", "mounts", "command", "args")}
        capacity = args.gpus
        for i in range(args.tasks):
            answer = self.call("POST", "/api/v1/tasks/", op=False,
                               json={**body, "name": f"soak-{i}", "sku_count": 1, "replicas": 1, "external_port": None})
            if answer is None or answer.status_code != 201:
                sys.exit(f"could not create a task: {answer and answer.text}")
        self.changes = {}
        last_status = {}
        deadline = time.monotonic() + args.minutes * 60
        next_progress = time.monotonic() + 60
        rng = random.Random(args.seed)
        while time.monotonic() < deadline and time.monotonic() < hard_deadline:
            tasks = self.tasks()
            if tasks is None:
                time.sleep(1)
                continue
            for tid, task in tasks.items():
                if last_status.get(tid) != task["status"]:
                    self.changes[tid] = self.changes.get(tid, 0) + 1
                    last_status[tid] = task["status"]
            self.observe(tasks, capacity)
            self.act(rng, tasks)
            if time.monotonic() >= next_progress:
                next_progress += 60
                statuses = {}
                for task in tasks.values():
                    statuses[task["status"]] = statuses.get(task["status"], 0) + 1
                self.note(f"progress: {json.dumps({**self.counts, 'stuck': len(self.stuck), 'lost': len(self.lost), 'statuses': statuses})}")
            time.sleep(0.5)
        # Let the checks of the last operations come due (a bounded wait, still observing).
        settle = time.monotonic() + 2 * args.lost_seconds + 5
        while self.pending_checks and time.monotonic() < min(settle, hard_deadline):
            tasks = self.tasks()
            if tasks is not None:
                self.observe(tasks, capacity)
            time.sleep(1)
        restarts, crashes = self.supervisor_counts()
        listed, orphans = self.stop_stack()
        result = {
            "minutes": args.minutes, "operations": self.counts["operations"], "worker_restarts": restarts,
            "worker_crashes": crashes, "stuck_tasks": len(self.stuck), "lost_messages": len(self.lost),
            "orphan_processes": orphans, "http_errors": self.counts["http_errors"],
            "left_running_listed": listed, "var_dir": str(self.var),
        }
        print(json.dumps(result), flush=True)
        return 0 if not (crashes or self.stuck or self.lost or orphans) else 1

    def supervisor_counts(self):
        log = (self.var / "log" / "supervisord.log").read_text(errors="replace").splitlines()
        spawned = {}
        crashes = 0
        for line in log:
            if "spawned: '" in line:
                name = line.split("spawned: '")[1].split("'")[0]
                spawned[name] = spawned.get(name, 0) + 1
            if "exited: " in line and "not expected" in line:
                crashes += 1
                self.note(f"supervisor: {line}")
        return sum(n - 1 for n in spawned.values()), crashes

    def act(self, rng, tasks):
        by_status = {}
        for task in tasks.values():
            by_status.setdefault(task["status"], []).append(task)
        startable = by_status.get("not_deployed", []) + by_status.get("stopped", []) + by_status.get("killed", []) \
            + by_status.get("failed", [])
        running = by_status.get("running", [])
        queued = by_status.get("queued", [])
        choices = ["start"] * 4 + ["stop"] * 3 + ["queue", "logs", "logs", "evaluation"] + (["force"] if queued else [])
        op = rng.choice(choices)
        if op == "start" and startable:
            task = rng.choice(startable)
            answer = self.call("POST", f"/api/v1/tasks/{task['id']}/start/")
            if answer is not None and answer.status_code < 300:
                self.pending_checks.append((time.monotonic() + self.args.lost_seconds, "start",
                                            (task["id"], task["status"], self.changes.get(task["id"], 0))))
        elif op == "stop":
            holders = running + by_status.get("deploying", [])
            pool = holders + queued
            if not pool:
                return
            task = rng.choice(pool)
            instance_ids = []
            if task in holders:
                answer = self.call("GET", f"/api/v1/tasks/{task['id']}/instances/", op=False)
                if answer is not None and answer.status_code == 200:
                    data = answer.json()
                    instance_ids = [i["id"] for i in (data["results"] if isinstance(data, dict) else data)]
            answer = self.call("POST", f"/api/v1/tasks/{task['id']}/stop/")
            if answer is not None and answer.status_code < 300 and instance_ids:
                self.pending_checks.append((time.monotonic() + self.args.lost_seconds, "stop", (task["id"], instance_ids)))
        elif op == "force" and queued:
            task = rng.choice(queued)
            if not task["pinned"]:
                self.call("POST", f"/api/v1/tasks/{task['id']}/pin/", who="manager")
            preview = self.call("GET", f"/api/v1/tasks/{task['id']}/force-start/", who="manager")
            if preview is not None and preview.status_code == 200:
                answer = self.call("POST", f"/api/v1/tasks/{task['id']}/force-start/", who="manager")
                if answer is not None and answer.status_code < 300:
                    self.pending_checks.append((time.monotonic() + self.args.lost_seconds, "start",
                                                (task["id"], "queued", self.changes.get(task["id"], 0))))
        elif op == "evaluation" and running:
            task = rng.choice(running)
            answer = self.call("POST", f"/api/v1/tasks/{task['id']}/evaluations/",
                               json={"request_count": 5, "concurrency": 1, "max_tokens": 8})
            if answer is not None and answer.status_code < 300:
                self.pending_checks.append((time.monotonic() + 2 * self.args.lost_seconds, "evaluation",
                                            (task["id"], answer.json()["id"])))
        elif op == "logs" and running:
            task = rng.choice(running)
            answer = self.call("GET", f"/api/v1/tasks/{task['id']}/instances/")
            if answer is not None and answer.status_code == 200:
                data = answer.json()
                items = data["results"] if isinstance(data, dict) else data
                if items:
                    self.call("GET", f"/api/v1/instances/{items[0]['id']}/logs/", params={"tail": 20})
        elif op == "queue":
            self.call("GET", "/api/v1/queue/")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--port", type=int, default=8150)
    parser.add_argument("--nodeports", default="33500-33999")
    parser.add_argument("--gpus", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--stuck-seconds", type=float, default=90)
    parser.add_argument("--lost-seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--tmp", default=None, help="where the var dir is made (default: the system's temp dir)")
    args = parser.parse_args()
    soak = Soak(args)
    print(f"soak: var dir {soak.var}; progress in {soak.var / 'soak.log'}", file=sys.stderr, flush=True)
    try:
        code = soak.run()
    except BaseException:
        if getattr(soak, "stack", None) is not None and soak.stack.poll() is None:
            os.killpg(soak.stack.pid, signal.SIGINT)
            soak.stack.wait(30)
        raise
    sys.exit(code)


if __name__ == "__main__":
    main()
