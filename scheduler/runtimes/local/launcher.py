"""Run one instance's command and write how it ended, so that any worker can tell later.

Started by the local runtime as ``python launcher.py EXIT_FILE -- ARGV...`` in a session of its
own, with stdout/stderr already pointing at the instance's log file. It runs ARGV in its process
group, waits for it, and writes ``{"returncode": N}`` (negative N: killed by signal -N) or
``{"error": "..."}`` (the command could not be started) to EXIT_FILE. It survives a worker
restart, and a SIGTERM sent to the group reaches the command while the launcher keeps waiting.

Kept free of Django and of the package's imports: it is run by file path.
"""

import json
import os
import signal
import subprocess
import sys


def write_exit(path, outcome):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(outcome, fh)
    os.replace(tmp, path)


def main(argv):
    exit_file, separator, command = argv[0], argv[1], argv[2:]
    if separator != "--" or not command:
        print("usage: launcher.py EXIT_FILE -- COMMAND...", file=sys.stderr)
        return 2
    # The group's SIGTERM is for the command; the launcher stays to record how it ended.
    # A handler (not SIG_IGN) so that the command does not inherit the ignoring.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"cannot run {command[0]!r}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        write_exit(exit_file, {"error": f"{command[0]}: {exc.strerror or exc}"})
        return 127
    while True:
        try:
            returncode = child.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue
    write_exit(exit_file, {"returncode": returncode})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
