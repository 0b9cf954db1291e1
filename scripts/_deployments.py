"""Print the local runtime's model-server processes that are still alive, one a line (no Django needed).

    python scripts/_deployments.py LOCAL_RUNTIME_DIR

Reads the ``<instance id>.json`` records the local runtime writes (task id, pid, the pid's start time, port);
a pid counts only while its start time (field 22 of /proc/<pid>/stat) matches the record, as the runtime checks.
"""

import json
import sys
from pathlib import Path


def start_time(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def alive(root):
    for path in sorted(Path(root).glob("*.json")):
        if not path.stem.isdigit():
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        pid = record.get("pid")
        if pid and start_time(pid) == record.get("start_time"):
            yield record


if __name__ == "__main__":
    for record in alive(sys.argv[1]):
        print(f"  task {record['task_id']} instance {record['instance_id']}: pid {record['pid']}, "
              f"port {record['port']}")
