"""The local runtime: each instance is a process on this machine.

Promises:
- ``apply`` starts, per instance without a process yet, ``task.command + task.args`` (or, with no
  command, the demo model server ``python -m demo_model`` + args) with the task's env,
  ``CUDA_VISIBLE_DEVICES`` set to the instance's GPU indices, and ``PORT`` set to its port.
  Ports: instance 0 listens on ``task.endpoint_port`` (the endpoint); every other instance gets a
  port of its own (processes of one machine cannot share one) from the top of ``NODEPORT_RANGE``,
  picked at apply time and kept in its record. Readiness is checked on each instance's own port.
- Output goes to a log file per instance; bookkeeping lives in files (``records``), so a worker
  restart finds the processes again and tells a dead pid, or a reused one, from a live one.
- ``teardown`` sends SIGTERM to each instance's process group (the launcher and the command, even
  when the launcher itself was killed), SIGKILL after ``LOCAL_STOP_GRACE_SECONDS``, then forgets
  the files (archive the logs first). Processes that left the group (``setsid``) die too: the
  launcher is their subreaper (``launcher``).
- A root worker never runs a command as root (``isolation``).
- A port still taken by another process (most often the previous holder of the endpoint port,
  still being stopped) is a transient error: the deploy is retried shortly.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from django.conf import settings

from deploy_portal.messages import N_, Sentence
from tasks.models import InstanceStatus, TaskInstance

from ...ports import held_ports, quarantined_ports
from ..base import InstanceObservation, Runtime, TransientRuntimeError, Workload, task_env
from ..logs import tail_lines
from .isolation import demo_python, instance_dir, instance_identity, protect_worker_files, remove_instance_dir
from .launcher import descendants
from .records import ProcessRecord, RecordStore, group_alive, is_alive, process_start_time

LAUNCHER = str(Path(__file__).with_name("launcher.py"))
# What a process gets from the worker's environment; the rest (secrets, DATABASE_URL) stays out.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "VIRTUAL_ENV", "PYTHONPATH")
FAILURE_LOG_LINES = 10


def port_taken(port):
    """Whether something listens on ``port`` (any address); TIME_WAIT leftovers do not count."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError:
            return True
        return False


def port_open(port, timeout=0.2):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def last_lines(path, count=FAILURE_LOG_LINES, limit=64 * 1024):
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            data = fh.read()
    except FileNotFoundError:
        return ""
    return "".join(deque(data.decode("utf-8", errors="replace").splitlines(keepends=True), maxlen=count)).rstrip()


def read_last_lines(path, count, block=64 * 1024):
    """The last ``count`` lines of the file at ``path``, read back from its end only as far as they reach."""
    blocks, newlines = [], 0
    with open(path, "rb") as fh:
        position = fh.seek(0, os.SEEK_END)
        while position > 0 and newlines <= count:
            step = min(block, position)
            position -= step
            fh.seek(position)
            blocks.append(fh.read(step))
            newlines += blocks[-1].count(b"\n")
    # A character cut at the first block's start is in a line that tail_lines leaves out.
    return tail_lines(b"".join(reversed(blocks)).decode("utf-8", errors="replace"), count)


def command_line(task):
    """What an instance runs: the task's command and args, or the demo model server with the args."""
    command = [str(part) for part in task.command] or [demo_python(), "-m", "demo_model"]
    return command + [str(part) for part in task.args]


def process_env(task, instance, port):
    env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    env.update({name: value for name, value, _secret in task_env(task)})
    env.update(
        {
            "CUDA_VISIBLE_DEVICES": ",".join(str(index) for index in instance.gpu_indices),
            "PORT": str(port),
            "DEPLOY_TASK_ID": str(task.pk),
            "DEPLOY_INSTANCE_INDEX": str(instance.index),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def exit_sentence(outcome):
    """The failure sentence and hint for how a process ended (the launcher's exit file)."""
    if outcome is None:
        return Sentence(N_("The process vanished (killed outside the portal, or the machine restarted) — start the task again."))
    if "error" in outcome:
        return Sentence(N_("The command cannot be run: %(error)s — check the command."), error=outcome["error"])
    code = outcome.get("returncode", 0)
    if code == -signal.SIGKILL:
        return Sentence(N_("The process was killed (SIGKILL), most likely out of memory — raise SKU count."))
    if code == -signal.SIGBUS or code == 128 + signal.SIGBUS:
        return Sentence(N_("The process died of a bus error: /dev/shm is full — set SHM_SIZE larger."))
    if code < 0:
        return Sentence(N_("The process was killed by signal %(signal)s — check the log."), signal=-code)
    return Sentence(N_("The process exited with code %(code)s — check the command and the log."), code=code)


class LocalRuntime(Runtime):

    def __init__(self, root=None, stop_grace=None):
        self.store = RecordStore(root or settings.LOCAL_RUNTIME_DIR)
        self.stop_grace = settings.LOCAL_STOP_GRACE_SECONDS if stop_grace is None else stop_grace
        # Popen objects of the processes this worker started, kept only to reap them.
        self._children = {}

    # -- apply -------------------------------------------------------------------------
    def apply(self, run):
        task = run.task
        called_at = time.time()  # kept on each record as ``applied_at`` (what bench_runtime measures)
        self.store.ensure()
        for instance in run.instances.order_by("index"):
            with self.store.locked(instance.pk):
                record = self.store.load(instance.pk)
                if record is None:
                    record = self._spawn(task, instance, called_at)
            if instance.handle != str(record.pid) or instance.port != record.port:
                # The port is recorded for the scheduler's port book: no endpoint is ever given out on it.
                TaskInstance.objects.filter(pk=instance.pk).update(handle=str(record.pid), port=record.port)
                instance.handle, instance.port = str(record.pid), record.port

    def _spawn(self, task, instance, called_at):
        if instance.index == 0 and task.endpoint_port:
            port = task.endpoint_port
            if port_taken(port):
                # Most often the previous holder of the port is still being stopped: try again shortly.
                raise TransientRuntimeError(f"port {port} is still in use")
            return self._start(task, instance, port, called_at)
        # Spare ports are picked and recorded under one machine-wide lock: two applies never pick the same.
        with self.store.locked("ports"):
            return self._start(task, instance, self._spare_port(), called_at)

    def _spare_port(self):
        """The highest port of ``NODEPORT_RANGE`` no endpoint holds, no record names and nothing listens on.

        Endpoints are picked from the bottom of the range, so spare ports come from its top.
        """
        low, high = settings.NODEPORT_RANGE
        taken = held_ports() | quarantined_ports()
        taken |= {record.port for record in self.store.all()}
        for port in range(high, low - 1, -1):
            if port not in taken and not port_taken(port):
                return port
        raise TransientRuntimeError(f"no free port is left in {low}-{high}")

    def _start(self, task, instance, port, called_at):
        command = command_line(task)
        # Never as root: a root worker runs the command as the instance user (isolation), in a directory of its own.
        identity = instance_identity()
        if identity is not None:
            protect_worker_files()
        home = instance_dir(identity, instance.pk)
        run_as = ["--as", f"{identity.uid}:{identity.gid}:{home}"] if identity is not None else []
        env = process_env(task, instance, port)
        # The demo model is imported from the portal's checkout, no longer the working directory.
        python_path = [str(settings.BASE_DIR), env.get("PYTHONPATH")]
        env.update(HOME=str(home), PYTHONPATH=os.pathsep.join(filter(None, python_path)))
        if identity is not None:
            env["USER"] = identity.name
        with open(self.store.path(instance.pk, "log"), "ab") as log:
            process = subprocess.Popen(
                [sys.executable, LAUNCHER, str(self.store.path(instance.pk, "exit")), *run_as, "--", *command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=home,
                start_new_session=True,
            )
        self._children[instance.pk] = process
        record = ProcessRecord(
            task_id=task.pk,
            run_id=instance.run_id,
            instance_id=instance.pk,
            index=instance.index,
            port=port,
            pid=process.pid,
            start_time=process_start_time(process.pid),
            applied_at=called_at,
            command=command,
        )
        self.store.save(record)
        return record

    # -- observe -----------------------------------------------------------------------
    def observe(self, run, snapshot=None):
        self._reap()
        instances = sorted(run.instances.all(), key=lambda instance: instance.index)  # prefetched by the caller
        return [self._observe_instance(instance) for instance in instances]

    def _observe_instance(self, instance):
        record = self.store.load(instance.pk)
        if record is None:
            return InstanceObservation(
                index=instance.index,
                status=InstanceStatus.PENDING,
                exists=False,
                message=Sentence(N_("The process has not been started yet.")),
            )
        if is_alive(record):
            if port_open(record.port):
                return InstanceObservation(
                    index=instance.index, status=InstanceStatus.READY, address=f"127.0.0.1:{record.port}",
                )
            return InstanceObservation(
                index=instance.index,
                status=InstanceStatus.STARTING,
                message=Sentence(N_("Waiting for the process to listen on port %(port)s."), port=record.port),
            )
        message = exit_sentence(self.store.exit_outcome(instance.pk))
        lines = last_lines(self.store.path(instance.pk, "log"))
        if lines:
            message = Sentence(N_("%(sentence)s Last log lines:\n%(lines)s"), sentence=message, lines=lines)
        return InstanceObservation(index=instance.index, status=InstanceStatus.FAILED, message=message)

    def _reap(self):
        for instance_id, process in list(self._children.items()):
            if process.poll() is not None:
                del self._children[instance_id]

    # -- teardown ----------------------------------------------------------------------
    def teardown(self, run):
        ours = set(run.instances.values_list("pk", flat=True))
        for record in self.store.all():
            if record.instance_id in ours or record.run_id == run.pk:
                self._remove(record.instance_id)

    def workloads(self):
        return [
            Workload(task_id=record.task_id, instance_id=record.instance_id, handle=str(record.pid), run_id=record.run_id)
            for record in self.store.all()
        ]

    def remove_workload(self, workload):
        self._remove(workload.instance_id)

    def _remove(self, instance_id):
        with self.store.locked(instance_id):
            record = self.store.load(instance_id)
            if record is not None and group_alive(record):
                self._stop(record)
            self.store.forget(instance_id)
            remove_instance_dir(instance_id)
        self._reap()

    def _stop(self, record):
        """SIGTERM to the process group, SIGKILL once the grace period has passed.

        The launcher passes the SIGTERM on to every descendant, the ones that left the group too (it is
        their subreaper); the SIGKILL, which it cannot catch, is sent to them from here while it still lives.
        """
        self._signal(record, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        while time.monotonic() < deadline:
            self._reap()
            if not group_alive(record):
                return
            time.sleep(0.05)
        if is_alive(record):
            for pid in descendants(record.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._signal(record, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while group_alive(record) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.02)

    @staticmethod
    def _signal(record, signum):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signum)

    # -- logs --------------------------------------------------------------------------
    def _log_path(self, instance):
        path = self.store.path(instance.pk, "log")
        if not path.exists():
            raise LookupError(instance.pk)
        return path

    def read_log(self, instance, tail=None):
        path = self._log_path(instance)
        if tail is None:
            return path.read_bytes().decode("utf-8", errors="replace")
        return read_last_lines(path, tail)

    def open_log(self, instance):
        stream = open(self._log_path(instance), "rb")  # noqa: SIM115 - closed by the reader
        return os.fstat(stream.fileno()).st_size, stream

    def log_tail_bytes(self, instance, limit):
        with open(self._log_path(instance), "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            return fh.read()
