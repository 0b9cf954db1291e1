"""The platform's own health, as facts: is there a deploy worker, an evaluations worker and beat that wrote a
heartbeat within ``HEALTH_STALE_SECONDS``; and, for readiness, do the database and the broker answer.

Read by the portal's banner, ``/healthz``, ``/readyz`` and ``GET /api/v1/health/``: one place decides what
"unwell" means.
"""

from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import ProcessKind, WorkerHeartbeat

BROKER_TIMEOUT_SECONDS = 2.0
DEPLOY_WORKER, EVALUATIONS_WORKER, BEAT = "deploy_worker", "evaluations_worker", "beat"
# What the banner is shown for: without them nothing deploys, stops, advances the queue or times out.
ESSENTIAL = (DEPLOY_WORKER, BEAT)


@dataclass(frozen=True)
class Process:
    name: str  # portal@host, beat@host
    seen_at: object
    fresh: bool


@dataclass(frozen=True)
class Component:
    """One role (deploy worker, evaluations worker, beat): up when any of its processes is fresh."""

    role: str
    processes: tuple

    @property
    def up(self):
        return any(process.fresh for process in self.processes)

    @property
    def last_seen(self):
        """When one of its processes was last seen (None: never)."""
        return max((process.seen_at for process in self.processes), default=None)


@dataclass(frozen=True)
class Health:
    components: tuple

    def __getitem__(self, role):
        return next(component for component in self.components if component.role == role)

    @property
    def unwell(self):
        """The essential components that are down (the banner is shown while there is one)."""
        return tuple(component for component in self.components if component.role in ESSENTIAL and not component.up)


def _roles(row):
    if row.kind == ProcessKind.BEAT:
        return {BEAT}
    queues = set(filter(None, row.queues.split(",")))
    roles = set()
    if settings.CELERY_TASK_DEFAULT_QUEUE in queues:
        roles.add(DEPLOY_WORKER)
    if settings.EVALUATIONS_QUEUE in queues:
        roles.add(EVALUATIONS_WORKER)
    return roles


def platform_health(now=None):
    """Which roles have a process seen within ``HEALTH_STALE_SECONDS`` of ``now`` (one query)."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.HEALTH_STALE_SECONDS)
    processes = {DEPLOY_WORKER: [], EVALUATIONS_WORKER: [], BEAT: []}
    for row in WorkerHeartbeat.objects.order_by("worker"):
        for role in _roles(row):
            processes[role].append(Process(name=row.worker, seen_at=row.seen_at, fresh=row.seen_at >= since))
    return Health(components=tuple(Component(role=role, processes=tuple(found)) for role, found in processes.items()))


def database_answers():
    """The database answers a trivial query: None, or what went wrong."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", said as it is
        return f"{type(exc).__name__}: {exc}"
    return None


def broker_answers():
    """The Celery broker accepts a connection within BROKER_TIMEOUT_SECONDS: None, or what went wrong."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None  # no broker: tasks run in the web process
    try:
        with current_app.connection_for_write(connect_timeout=BROKER_TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
            conn.default_channel  # noqa: B018 - opening a channel is what talks to the broker (Redis: a PING)
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return None


def readiness():
    """Readiness's checks: the database, the broker, and each role's freshness. Answers ``(ready, checks, health)``;
    ready when the database and the broker answer and a deploy worker was seen recently (health is None while
    the database does not answer)."""
    database, broker = database_answers(), broker_answers()
    checks = {"database": {"ok": database is None, "error": database}, "broker": {"ok": broker is None, "error": broker}}
    health = platform_health() if database is None else None
    for component in health.components if health else ():
        checks[component.role] = {"ok": component.up, "last_seen": component.last_seen}
    ready = database is None and broker is None and health[DEPLOY_WORKER].up
    return ready, checks, health
