"""Logs as the runtimes keep them: their tails as text, and the archive a teardown writes first, so a failed,
stopped or killed run's logs stay readable after its workloads are gone. Reading a log wherever it lives is
``scheduler.logs``."""

import logging

from django.conf import settings
from django.utils import timezone

from tasks.models import TaskInstance

logger = logging.getLogger(__name__)


def tail_lines(text, tail):
    """The last ``tail`` lines of ``text`` (all of it when ``tail`` is None)."""
    if tail is None:
        return text
    if tail <= 0:
        return ""
    lines = text.splitlines(keepends=True)
    return "".join(lines[-tail:])


def tail_text(data: bytes, limit: int) -> str:
    """The last ``limit`` bytes of a log as text, starting at a line boundary when one is near."""
    if len(data) > limit:
        data = data[-limit:]
        newline = data.find(b"\n")
        if 0 <= newline < len(data) - 1:
            data = data[newline + 1 :]
    # Any bytes at all: invalid UTF-8 becomes U+FFFD, and so does NUL, which a PostgreSQL text column cannot hold.
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def archive_instance_log(runtime, instance):
    """Store the last ``LOG_ARCHIVE_BYTES`` of the instance's live log on its row (once)."""
    try:
        # One byte more than is kept: tail_text then knows the log was cut, and cuts at a line boundary.
        data = runtime.log_tail_bytes(instance, settings.LOG_ARCHIVE_BYTES + 1)
    except LookupError:
        data = b""
    TaskInstance.objects.filter(pk=instance.pk, log_archived=False).update(
        log_archive=tail_text(data, settings.LOG_ARCHIVE_BYTES),
        log_archived=True,
        finished_at=instance.finished_at or timezone.now(),
    )
