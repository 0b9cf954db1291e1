"""Celery tasks of observability: thin, idempotent (the beat entries are in ``deploy_portal/settings.py``)."""

import logging

from celery import shared_task
from django.conf import settings

from . import notifications, services

logger = logging.getLogger(__name__)


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
