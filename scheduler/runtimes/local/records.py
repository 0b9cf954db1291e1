"""Bookkeeping of local instance processes in files, so that any worker (or a restarted one) finds them.

Under ``LOCAL_RUNTIME_DIR`` each instance row has ``<id>.json`` (task, index, pid, the pid's start
time, port, command), ``<id>.log`` (its output), ``<id>.exit`` (written by the launcher when the
command ends) and ``<id>.lock`` (held while the instance is applied or removed). A pid counts as
ours only while its start time matches the recorded one: a reused pid reads as dead.
"""

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class ProcessRecord:
    task_id: int
    instance_id: int
    index: int
    port: int
    pid: int | None = None
    start_time: int | None = None
    applied_at: float = 0.0
    command: list = field(default_factory=list)
    run_id: int | None = None  # the run the instance belongs to (None in records written before runs)


class RecordStore:
    def __init__(self, root):
        self.root = Path(root)

    def ensure(self):
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, instance_id, suffix):
        return self.root / f"{instance_id}.{suffix}"

    def load(self, instance_id):
        try:
            data = json.loads(self.path(instance_id, "json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return ProcessRecord(**data)

    def save(self, record):
        target = self.path(record.instance_id, "json")
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, target)

    def all(self):
        records = []
        for path in sorted(self.root.glob("*.json")):
            if path.stem.isdigit():
                record = self.load(int(path.stem))
                if record is not None:
                    records.append(record)
        return records

    def exit_outcome(self, instance_id):
        """How the command ended, as the launcher wrote it; None while it runs (or if nobody wrote it)."""
        try:
            return json.loads(self.path(instance_id, "exit").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def forget(self, instance_id):
        for suffix in ("json", "exit", "log", "exit.tmp", "json.tmp", "lock"):
            with contextlib.suppress(FileNotFoundError):
                self.path(instance_id, suffix).unlink()

    @contextlib.contextmanager
    def locked(self, instance_id):
        """Hold the instance's file lock: two workers never spawn or remove one instance at once."""
        self.ensure()
        with open(self.path(instance_id, "lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def process_start_time(pid):
    """The pid's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22); None if it is gone.

    A zombie (exited, not yet reaped) counts as gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_alive(record):
    """Whether the recorded process still runs, and is the same process (not a reused pid)."""
    if not record.pid:
        return False
    started = process_start_time(record.pid)
    return started is not None and started == record.start_time


def group_members(pgid):
    """Pids of the live processes in process group ``pgid`` (zombies left out)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def group_alive(record):
    """Whether anything of the instance's process group (launcher and command) still runs.

    The launcher leads the group. While it lives with its recorded start time, the group is ours.
    Once it is gone, live members of a group with its pid are still ours: the kernel does not hand
    out a pid that is still a group id. A live process with that pid but another start time means
    the pid was reused, so our group is empty.
    """
    if not record.pid:
        return False
    if is_alive(record):
        return True
    return process_start_time(record.pid) is None and bool(group_members(record.pid))
