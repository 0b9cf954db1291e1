"""Reading an instance's log wherever it lives: the runtime while the instance exists, else the archive.

The portal and the API call ``instance_log_text`` (view, download). Teardown calls ``archive_instance_log`` first, so a failed, stopped or killed task's
logs stay readable after its workloads are gone.
"""

import logging

from django.conf import settings
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify

from tasks.models import TaskInstance

from . import get_runtime

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
    return data.decode("utf-8", errors="replace")


def instance_log_text(instance, tail=None) -> str:
    """The instance's log (its last ``tail`` lines): live while the workload exists, else archived."""
    if not instance.log_archived:
        try:
            return get_runtime().read_log(instance, tail=tail)
        except LookupError:
            pass
    return tail_lines(instance.log_archive, tail)


def instance_log_attachment(instance):
    """The Content-Disposition of an instance's log download: ``<task-slug>-<task id>-<index>.log``.

    Safe for any task name (newlines, quotes, Chinese): the name is slugified, the header encoded by Django.
    """
    filename = f"{slugify(instance.task.name, allow_unicode=True) or 'task'}-{instance.task_id}-{instance.index}.log"
    return content_disposition_header(as_attachment=True, filename=filename)


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
