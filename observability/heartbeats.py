"""Each Celery process says it is alive, by itself: a worker bootstep and a beat scheduler that write their own
``WorkerHeartbeat`` row every ``HEARTBEAT_INTERVAL_SECONDS``.

A process that dies stops writing and its row ages, whatever the others do; no message has to travel through
the broker for it (a ping task would itself wait behind a dead worker). Registered in ``deploy_portal/celery.py``
(the step) and by ``CELERY_BEAT_SCHEDULER`` (the scheduler). Importing this module loads no model: Celery
imports it before Django is set up.
"""

import logging
import socket

from celery import bootsteps
from celery.beat import PersistentScheduler

logger = logging.getLogger(__name__)


def _write(name, kind, queues=()):
    """One heartbeat row, on a connection of its own that is closed afterwards; never raises (a database that
    is down must not take the worker with it: its row ages, which is what the portal says)."""
    from django.db import connection  # noqa: PLC0415 - loaded once Django is set up

    from . import services  # noqa: PLC0415

    try:
        services.heartbeat(name=name, kind=kind, queues=queues)
    except Exception:  # noqa: BLE001 - logged; the next beat tries again
        logger.warning("the heartbeat of %s could not be written", name, exc_info=True)
    finally:
        if not connection.in_atomic_block:  # a test's transaction keeps its connection
            connection.close()


def _interval():
    from django.conf import settings  # noqa: PLC0415

    return settings.HEARTBEAT_INTERVAL_SECONDS


class HeartbeatStep(bootsteps.StartStopStep):
    """A worker's heartbeat, on the worker's own timer (its event loop's, or a thread's in the threads pool)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        queues = tuple(worker.app.amqp.queues.consume_from or worker.app.amqp.queues)
        self.beat(worker.hostname, queues)
        self.tref = worker.timer.call_repeatedly(_interval(), self.beat, (worker.hostname, queues), priority=10)

    def beat(self, hostname, queues):
        _write(hostname, "worker", queues)

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


class BeatScheduler(PersistentScheduler):
    """Celery's persistent scheduler that also writes beat's heartbeat at most every interval, from its tick."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.heartbeat_name = f"beat@{socket.gethostname()}"
        self.heartbeat_due = 0.0

    def tick(self, *args, **kwargs):
        now = self.app.now().timestamp()
        if now >= self.heartbeat_due:
            _write(self.heartbeat_name, "beat")
            self.heartbeat_due = now + _interval()
        # Never sleep past the next heartbeat, whatever the schedule's next entry.
        return min(super().tick(*args, **kwargs), _interval())
