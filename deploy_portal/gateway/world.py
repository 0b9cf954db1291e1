"""What one gateway process knows, read from the database on a timer (never per request): the running tasks
with their ready replicas, and the usable API keys. Plus what it counts, written back in batches."""

import asyncio
import logging
import time
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.db import connections

from endpoints import selectors
from endpoints.services import usage_record

logger = logging.getLogger(__name__)


def _read(reader, *args):
    """A database read (or write) from the gateway's thread pool, on a connection of its own, closed after: the
    pool's threads come and go, and a timer's few queries a second do not need a connection kept open."""
    try:
        return reader(*args)
    finally:
        connections.close_all()


class World:
    def __init__(self, refresh_seconds=1.0):
        self.refresh_seconds = refresh_seconds
        self.routes = {}
        self.by_name = {}
        self.grants = {}
        self.keys_version = None
        self.loaded_at = None  # time.monotonic() of the last good read

    async def refresh(self):
        """Read the routes, and the keys when one changed (made, revoked, scoped) since the last read."""
        routes = await sync_to_async(_read, thread_sensitive=False)(selectors.routes)
        version = await sync_to_async(_read, thread_sensitive=False)(selectors.keys_changed_at)
        if version != self.keys_version:
            self.grants = await sync_to_async(_read, thread_sensitive=False)(selectors.key_grants)
            self.keys_version = version
        by_name = {}
        for route in routes.values():
            by_name.setdefault((route.project, route.name), []).append(route)
        self.routes, self.by_name = routes, by_name
        self.loaded_at = time.monotonic()

    def find(self, project, ref):
        """The running task ``/<project>/<ref>/`` names (its id, or a name only one running task has), or None."""
        if ref.isdigit():
            route = self.routes.get(int(ref))
            if route is not None and route.project == project:
                return route
        named = self.by_name.get((project, ref), ())
        return named[0] if len(named) == 1 else None

    def grant(self, digest, now=None):
        """The key's grant if it is usable now (keys that expired since the last read are refused here)."""
        grant = self.grants.get(digest)
        if grant is not None and grant.expires_at is not None and grant.expires_at <= (now or datetime.now(UTC)):
            return None
        return grant

    async def keep_fresh(self):
        while True:
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - a database blip: serve what is known, try again
                logger.exception("gateway: the routing table could not be read")
            await asyncio.sleep(self.refresh_seconds)


class Meter:
    """Counts per (hour, task, project, key), and each key's last use; flushed to ``UsageHour`` rows in batches."""

    def __init__(self, flush_seconds=5.0):
        self.flush_seconds = flush_seconds
        self.rows = {}
        self.used_keys = {}

    def count(self, *, task_id, project_id, key_id, status, latency_ms, tokens):
        now = datetime.now(UTC)
        hour = now.replace(minute=0, second=0, microsecond=0)
        row = self.rows.setdefault((hour, task_id, project_id, key_id), {
            "requests": 0, "errors": 0, "latency_ms_total": 0, "latency_ms_max": 0, "prompt_tokens": 0,
            "completion_tokens": 0,
        })
        row["requests"] += 1
        row["errors"] += status >= 500
        row["latency_ms_total"] += latency_ms
        row["latency_ms_max"] = max(row["latency_ms_max"], latency_ms)
        if tokens is not None:
            row["prompt_tokens"] += tokens[0]
            row["completion_tokens"] += tokens[1]
        if key_id is not None:
            self.used_keys[key_id] = now

    async def flush(self):
        rows, used = self.rows, self.used_keys
        self.rows, self.used_keys = {}, {}
        if not rows and not used:
            return
        try:
            await sync_to_async(_read, thread_sensitive=False)(lambda: usage_record(rows, used_keys=used))
        except Exception:
            # Kept for the next flush: counts are added, so nothing is lost or counted twice.
            for key, counts in rows.items():
                into = self.rows.setdefault(key, dict.fromkeys(counts, 0))
                for name, value in counts.items():
                    into[name] = max(into[name], value) if name == "latency_ms_max" else into[name] + value
            self.used_keys = {**used, **self.used_keys}
            raise

    async def keep_flushing(self):
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 - the database is away: the counts wait in memory
                logger.exception("gateway: usage could not be written; kept for the next try")
