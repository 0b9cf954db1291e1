"""What keeps a local instance away from the worker that started it. It is not a container (README: security).

- A worker running as root starts every instance as ``settings.LOCAL_INSTANCE_USER`` (created, as a
  system user without a login shell, if missing), in a directory of its own, with no supplementary
  groups. Such an instance cannot read the worker's ``/proc/<pid>/environ`` (another user's), nor
  ``var/``, the SQLite database or ``.env``, which the worker makes readable by root only.
- A worker running as an ordinary user cannot give its instances another identity; it makes itself
  non-dumpable (``PR_SET_DUMPABLE`` 0), so processes of its own user cannot read its environment or
  memory through ``/proc`` or ptrace.
"""

import functools
import logging
import os
import pwd
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from .launcher import PR_SET_DUMPABLE, prctl

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    name: str


def runs_as_root():
    return os.geteuid() == 0


def make_non_dumpable():
    """An ordinary user's worker (and web process): its environment and memory stay its own."""
    if not runs_as_root():
        prctl(PR_SET_DUMPABLE, 0)


@functools.cache
def instance_identity():
    """Who instances run as: None when the worker is not root (they run as its user), else the instance user."""
    if not runs_as_root():
        return None
    name = settings.LOCAL_INSTANCE_USER
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = _create_user(name)
    if entry.pw_uid == 0:
        raise RuntimeError(f"LOCAL_INSTANCE_USER {name!r} is root: instances must not run as root")
    return Identity(uid=entry.pw_uid, gid=entry.pw_gid, name=name)


def _create_user(name):
    useradd = shutil.which("useradd")
    if useradd is None:
        raise RuntimeError(f"the instance user {name!r} does not exist and useradd is not installed to create it")
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True,
    )
    try:
        entry = pwd.getpwnam(name)  # another worker may have created it at the same moment
    except KeyError:
        raise RuntimeError(f"cannot create the instance user {name!r}: {result.stderr.strip()}") from None
    logger.info("created the system user %s (uid %s) to run local instances", name, entry.pw_uid)
    return entry


def protect_worker_files():
    """Root only: what this worker writes from now on, var/, the SQLite database and .env, for root alone.

    ``var/`` keeps the execute bit for others, so that the instance user reaches its directories in
    ``LOCAL_INSTANCE_DIR`` without being able to list or read anything else there.
    """
    os.umask(0o077)
    var_dir, homes = Path(settings.VAR_DIR), Path(settings.LOCAL_INSTANCE_DIR)
    homes.mkdir(parents=True, exist_ok=True)
    homes.chmod(0o711)
    closed = [Path(settings.BASE_DIR) / ".env"]
    if var_dir in homes.parents:
        var_dir.chmod(0o711)
        closed += [p for p in var_dir.iterdir() if p != homes and p not in homes.parents]
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        closed.append(Path(database["NAME"]))
    for path in closed:
        if path.exists() and not path.is_symlink():
            path.chmod(0o700 if path.is_dir() else 0o600)


def others_can_run(path):
    """Whether a user of no group of ours may execute ``path`` (every directory above it searchable)."""
    path = Path(path).resolve()
    return path.exists() and all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def demo_python():
    """The interpreter of the demo model: ``LOCAL_DEMO_PYTHON``, else this one if the instance user can run it
    (pyenv's under /root it cannot), else the system's python3 (the demo model needs only the standard library)."""
    if settings.LOCAL_DEMO_PYTHON:
        return settings.LOCAL_DEMO_PYTHON
    if not runs_as_root() or others_can_run(sys.executable):
        return sys.executable
    return next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if others_can_run(p)), sys.executable)


def instance_dir(identity, instance_id):
    """A fresh directory of the instance's own (its working directory and HOME), owned by whoever runs it."""
    path = Path(settings.LOCAL_INSTANCE_DIR) / str(instance_id)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True)
    if identity is not None:
        os.chown(path, identity.uid, identity.gid)
    return path


def remove_instance_dir(instance_id):
    shutil.rmtree(Path(settings.LOCAL_INSTANCE_DIR) / str(instance_id), ignore_errors=True)
