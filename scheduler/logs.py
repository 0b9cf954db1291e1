"""Reading an instance's log wherever it lives: the runtime while the instance exists, else the archive.

The portal and the API call ``instance_log_text`` (a tail, or the page's view) and ``instance_log_chunks``
(the whole log, streamed with flat memory).
"""

from django.utils.http import content_disposition_header
from django.utils.text import slugify

from .runtimes import get_runtime
from .runtimes.logs import tail_lines


def instance_log_text(instance, tail=None) -> str:
    """The instance's log (its last ``tail`` lines): live while the workload exists, else archived."""
    if not instance.log_archived:
        try:
            return get_runtime().read_log(instance, tail=tail)
        except LookupError:
            pass
    return tail_lines(instance.log_archive, tail)


def instance_log_chunks(instance, chunk_bytes=64 * 1024):
    """The whole log as byte chunks, read while they are sent (flat memory whatever its size): the live log as it
    is when the download starts, while the workload exists, else the archive."""
    if not instance.log_archived:
        try:
            size, stream = get_runtime().open_log(instance)
        except LookupError:
            pass
        else:
            return _read(stream, size, chunk_bytes)
    return iter([instance.log_archive.encode()] if instance.log_archive else [])


def _read(stream, size, chunk_bytes):
    with stream:
        left = size
        while left is None or left > 0:
            data = stream.read(chunk_bytes if left is None else min(chunk_bytes, left))
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data


def instance_log_attachment(instance):
    """The Content-Disposition of an instance's log download: ``<task-slug>-<task id>-<index>.log``.

    Safe for any task name (newlines, quotes, Chinese): the name is slugified, the header encoded by Django.
    """
    filename = f"{slugify(instance.task.name, allow_unicode=True) or 'task'}-{instance.task_id}-{instance.index}.log"
    return content_disposition_header(as_attachment=True, filename=filename)
