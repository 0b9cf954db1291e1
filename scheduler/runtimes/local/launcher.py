"""Run one instance's command and write how it ended, so that any worker can tell later.

Started by the local runtime as ``python launcher.py EXIT_FILE [--as UID:GID:DIR] -- ARGV...`` in a
session of its own, with stdout/stderr already pointing at the instance's log file. It runs ARGV in
its process group, waits for it, and writes ``{"returncode": N}`` (negative N: killed by signal -N)
or ``{"error": "..."}`` (the command could not be started) to EXIT_FILE. It survives a worker
restart, and a SIGTERM sent to the group reaches the command while the launcher keeps waiting.

- ``--as``: the command runs as that user and group (no supplementary groups) in DIR; the launcher
  keeps the worker's identity, so the command can neither read the launcher's environment nor
  outlive it by signals the launcher cannot send.
- The launcher is a child subreaper (``PR_SET_CHILD_SUBREAPER``): a process of the instance that
  leaves the group (``setsid``, a double fork) is re-parented to the launcher, not to init. A SIGTERM
  is passed on to every descendant; once the command has ended, whatever it left behind gets SIGTERM,
  then SIGKILL after ``DESCENDANT_GRACE_SECONDS``, and the launcher exits only when none is left.

Kept free of Django and of the package's imports: it is run by file path.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
DESCENDANT_GRACE_SECONDS = 2.0


def prctl(option, value):
    """Linux's prctl(2) through libc; raises OSError when the kernel refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def descendants(pid):
    """Pids of every live process below ``pid`` (children, theirs, …), read from /proc; zombies left out."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def signal_all(pids, signum):
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def write_exit(path, outcome):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(outcome, fh)
    os.replace(tmp, path)


def reap_all():
    """Reap every exited child (the command and the orphans re-parented to us); the pids and statuses."""
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, status))


def finish_descendants():
    """Whatever the command left behind: SIGTERM, SIGKILL after the grace period, until none is left."""
    me = os.getpid()
    signal_all(descendants(me), signal.SIGTERM)
    deadline = time.monotonic() + DESCENDANT_GRACE_SECONDS
    while descendants(me):
        reap_all()
        if time.monotonic() > deadline:
            signal_all(descendants(me), signal.SIGKILL)
        time.sleep(0.02)
    reap_all()


def parse(argv):
    exit_file, rest = argv[0], argv[1:]
    identity = None
    if rest[:1] == ["--as"]:
        uid, gid, home = rest[1].split(":", 2)
        identity, rest = (int(uid), int(gid), home), rest[2:]
    if rest[:1] != ["--"] or len(rest) < 2:
        raise ValueError("usage: launcher.py EXIT_FILE [--as UID:GID:DIR] -- COMMAND...")
    return exit_file, identity, rest[1:]


def main(argv):
    try:
        exit_file, identity, command = parse(argv)
    except (ValueError, IndexError) as exc:
        print(exc, file=sys.stderr)
        return 2
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    # The group's SIGTERM is for the command and everything it started; the launcher stays to record how
    # it ended. A handler (not SIG_IGN) so that the command does not inherit the ignoring.
    signal.signal(signal.SIGTERM, lambda *_: signal_all(descendants(os.getpid()), signal.SIGTERM))
    signal.signal(signal.SIGINT, lambda *_: None)
    options = {}
    if identity is not None:
        uid, gid, home = identity
        options = {"user": uid, "group": gid, "extra_groups": [], "cwd": home}
    try:
        child = subprocess.Popen(command, **options)
    except OSError as exc:
        print(f"cannot run {command[0]!r}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        write_exit(exit_file, {"error": f"{command[0]}: {exc.strerror or exc}"})
        return 127
    returncode = None
    while returncode is None:
        try:
            pid, status = os.waitpid(-1, 0)  # the command, or an orphan re-parented to us
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue
        if pid == child.pid:
            returncode = os.waitstatus_to_exitcode(status)
    child.returncode = returncode  # reaped above: keep Popen from looking for it again
    finish_descendants()
    write_exit(exit_file, {"returncode": returncode})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
