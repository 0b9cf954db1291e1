"""Celery tasks of observability: thin, idempotent (the beat entries are in ``deploy_portal/settings.py``)."""

import socket

from celery import shared_task

from . import services


@shared_task(acks_late=True, ignore_result=True)
def sample_allocation():
    """The minute's allocation samples (beat, every minute)."""
    services.allocation_sample()


@shared_task(acks_late=True, ignore_result=True)
def compact_samples():
    """Minute samples older than a week become hourly rows (beat, every hour)."""
    services.samples_compact()


@shared_task(bind=True, acks_late=True, ignore_result=True)
def heartbeat(self):
    """The worker that runs this is alive (beat, every 30 s; ``/metrics`` says each worker's age)."""
    services.heartbeat(worker=self.request.hostname or socket.gethostname())
