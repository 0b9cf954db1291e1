"""Celery tasks of observability: thin, idempotent (the beat entries are in ``deploy_portal/settings.py``)."""

import logging
import socket

from celery import shared_task
from django.conf import settings

from . import notifications, services

logger = logging.getLogger(__name__)
PING_TIMEOUT_SECONDS = 1.0


@shared_task(acks_late=True, ignore_result=True)
def sample_allocation():
    """The minute's allocation samples (beat, every minute)."""
    services.allocation_sample()


@shared_task(acks_late=True, ignore_result=True)
def compact_samples():
    """Minute samples older than a week become hourly rows (beat, every hour)."""
    services.samples_compact()


@shared_task(acks_late=True, ignore_result=True)
def sample_gpu_utilisation():
    """How busy each running instance's GPUs are, where it can be read (beat, every minute)."""
    services.gpu_utilisation_sample()


@shared_task(bind=True, acks_late=True, ignore_result=True)
def heartbeat(self):
    """Every worker that answers a ping, and this one, is alive now (beat, every 30 s; ``/metrics`` says each one's age).

    Beat sends this to one worker; the ping reaches all of them, so a worker that stopped answering ages.
    """
    workers = {self.request.hostname or socket.gethostname()}
    try:
        for reply in self.app.control.ping(timeout=PING_TIMEOUT_SECONDS) or []:
            workers.update(reply)
    except Exception:  # noqa: BLE001 - a broker without broadcast still records this worker
        logger.warning("the workers could not be pinged", exc_info=True)
    services.heartbeat(workers=workers)


@shared_task(acks_late=True, ignore_result=True)
def event_recorded(event_id):
    """A task's state changed (sent after commit by ``tasks.services.event_record``): write its notifications."""
    notifications.event_notify(event_id=event_id)


@shared_task(acks_late=True, ignore_result=True)
def notify_waits_and_evaluations():
    """Tasks queued too long, evaluations finished (beat, every minute): write their notifications."""
    notifications.waits_notify()
    notifications.evaluations_notify()


@shared_task(
    bind=True, acks_late=True, ignore_result=True, autoretry_for=(notifications.DeliveryError,),
    retry_backoff=settings.NOTIFY_RETRY_BACKOFF_SECONDS, retry_backoff_max=600, retry_jitter=True,
    max_retries=settings.NOTIFY_MAX_RETRIES,
)
def deliver(self, delivery_id):
    """Post one notification; a failed attempt is retried with exponential back-off, the last one recorded as failed."""
    notifications.delivery_attempt(delivery_id=delivery_id, final=self.request.retries >= self.max_retries)
