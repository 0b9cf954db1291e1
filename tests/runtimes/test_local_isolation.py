"""The local runtime does not hand the host to a project member (issue 14): no root instances, no reading the
worker's environment or files, and no process of an instance outliving its teardown, ``setsid`` or not."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.runtimes.local.isolation import instance_identity
from scheduler.runtimes.local.runtime import INHERITED_ENV
from tasks.models import InstanceStatus
from tests.live import free_port, wait_until

from .test_local_runtime import observe_until, runtime  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db
ROOT = os.geteuid() == 0


def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def worker_secret():
    """A variable of this process's environment (the "worker") that no instance is given."""
    names = [item.split(b"=", 1)[0].decode() for item in Path("/proc/self/environ").read_bytes().split(b"\0") if item]
    return next(name for name in names if name not in INHERITED_ENV and name not in ("HOME", "USER", "PYTHONPATH"))


def finished_log(runtime, task):
    observe_until(runtime, task, InstanceStatus.FAILED)
    return runtime.read_log(task.instances.get())


@pytest.mark.skipif(not ROOT, reason="the worker is not root: instances run as its user (see the dumpable test)")
def test_a_root_worker_runs_instances_as_the_instance_user_who_cannot_read_its_environment(runtime, placed, settings):
    secret = worker_secret()
    probe = Path(settings.VAR_DIR) / "worker-file.txt"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text("the worker's own\n")
    probe.chmod(0o644)
    script = (
        f"id -u; cat /proc/{os.getpid()}/environ /proc/$PPID/environ | tr '\\0' '\\n'; "
        f"cat {probe}; ls {settings.VAR_DIR}; pwd; echo probe-done; exit 1"
    )
    task = placed(command=["sh", "-c", script], endpoint_port=free_port())
    runtime.apply(task.current_run)
    log = finished_log(runtime, task)

    uid = instance_identity().uid
    assert log.splitlines()[0] == str(uid) != "0"
    assert "probe-done" in log
    assert f"{secret}=" not in log and "the worker's own" not in log
    assert log.count("Permission denied") >= 3, log
    assert str(Path(settings.LOCAL_INSTANCE_DIR) / str(task.instances.get().pk)) in log  # its own directory


def started_pid(task, name):
    """The pid a command wrote to ``name`` in its own directory (its HOME)."""
    from django.conf import settings

    path = Path(settings.LOCAL_INSTANCE_DIR) / str(task.instances.get().pk) / name
    return int(wait_until(lambda: path.exists() and path.read_text().strip(), 10))


def test_a_process_that_left_the_group_with_setsid_dies_at_teardown(runtime, placed):
    script = "setsid sh -c 'echo $$ > $HOME/escaped.tmp; mv $HOME/escaped.tmp $HOME/escaped.pid; exec sleep 300' & sleep 300"
    task = placed(command=["sh", "-c", script], endpoint_port=free_port())
    runtime.apply(task.current_run)
    escaped = started_pid(task, "escaped.pid")
    try:
        assert alive(escaped)
        runtime.teardown(task.current_run)
        assert wait_until(lambda: not alive(escaped), 10)
    finally:
        if alive(escaped):
            os.kill(escaped, 9)


def test_what_a_command_leaves_behind_dies_when_it_ends(runtime, placed):
    script = "setsid sh -c 'echo $$ > $HOME/daemon.tmp; mv $HOME/daemon.tmp $HOME/daemon.pid; exec sleep 300' & sleep 1; exit 4"
    task = placed(command=["sh", "-c", script], endpoint_port=free_port())
    runtime.apply(task.current_run)
    daemon = started_pid(task, "daemon.pid")
    try:
        observe_until(runtime, task, InstanceStatus.FAILED)
        assert not alive(daemon)
        assert runtime.store.exit_outcome(task.instances.get().pk) == {"returncode": 4}
    finally:
        if alive(daemon):
            os.kill(daemon, 9)


def test_a_worker_that_is_not_root_makes_itself_non_dumpable():
    code = (
        "import ctypes, os; os.geteuid = lambda: 1000\n"
        "from scheduler.runtimes.local.isolation import make_non_dumpable\n"
        "libc = ctypes.CDLL(None); before = libc.prctl(3, 0, 0, 0, 0); make_non_dumpable()\n"
        "print(before, libc.prctl(3, 0, 0, 0, 0))"  # PR_GET_DUMPABLE
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.split() == ["1", "0"]
