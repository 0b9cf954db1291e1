"""Celery tasks: thin, idempotent, taking ids (STYLE.md §6).

Each one reloads its rows and returns quietly when there is nothing to do, so a redelivery
(``acks_late``: a worker that dies mid-task has its message delivered again) is harmless.
Transient runtime errors are retried with exponential back-off; permanent ones are not.
"""

import logging

from celery import shared_task

from deploy_portal.messages import N_, Sentence

from . import jobs, scheduling
from .runtimes.base import RuntimeFailure, TransientRuntimeError

logger = logging.getLogger(__name__)

MAX_RETRIES = 6
# Transient runtime errors are retried by Celery itself, backing off exponentially with jitter (so a thousand
# deploys retrying through an API outage do not come back at once); no worker sleeps in a retry loop.
RETRY = {
    "autoretry_for": (TransientRuntimeError,), "retry_backoff": True, "retry_backoff_max": 60,
    "retry_jitter": True, "max_retries": MAX_RETRIES,
}
# How often a deploying task is looked at between apply and ready (the fast path; reconcile is the
# net): soon after apply, then less often, so a model that loads for minutes does not hammer the API.
WATCH_FIRST_SECONDS = 0.5
WATCH_LONGEST_SECONDS = 5.0


def _next_watch(interval):
    return min(WATCH_LONGEST_SECONDS, interval * 1.5)


@shared_task(acks_late=True, ignore_result=True)
def schedule_all():
    """Beat's net: the pass over every VC (each service that changes a queue runs its VC's pass itself)."""
    scheduling.schedule_all()


@shared_task(bind=True, acks_late=True, ignore_result=True, **RETRY)
def deploy_task(self, task_id, run_id=None):
    """Apply run ``run_id`` of a deploying task through the runtime, then watch it until it is ready or failed."""
    try:
        status = jobs.deploy(task_id, run_id)
    except TransientRuntimeError as exc:
        if self.request.retries >= self.max_retries:
            jobs.fail(
                task_id,
                Sentence(
                    N_("The runtime could not be reached to deploy the task: %(error)s — start it again later."),
                    error=str(exc),
                ),
                run_id,
            )
            return
        raise  # retried by Celery (RETRY)
    except RuntimeFailure as exc:
        jobs.fail(task_id, exc.sentence, run_id)
        return
    if status == "deploying":
        watch_task.apply_async((task_id, run_id), {"interval": WATCH_FIRST_SECONDS}, countdown=WATCH_FIRST_SECONDS)


@shared_task(acks_late=True, ignore_result=True)
def watch_task(task_id, run_id=None, interval=WATCH_FIRST_SECONDS):
    """Observe a deploying run; look again (a little later each time) while it is still deploying.

    The watch ends with the run: ready, failed, stopped, or past the deploy timeout, which holds even while the
    runtime cannot be reached (``jobs.watch``).
    """
    if jobs.watch(task_id, run_id) == "deploying":
        interval = _next_watch(interval)
        watch_task.apply_async((task_id, run_id), {"interval": interval}, countdown=interval)


@shared_task(bind=True, acks_late=True, ignore_result=True, **RETRY)
def teardown_task(self, task_id, run_id=None):
    """Archive the logs of the run's instances, then remove their workloads (absent ones are fine).

    Past the retries, reconcile removes what is left (workloads of runs that ended).
    """
    try:
        jobs.teardown(task_id, run_id)
    except RuntimeFailure:
        logger.exception("teardown of run %s of task %s failed; reconcile will remove what is left", run_id, task_id)


@shared_task(acks_late=True, ignore_result=True)
def reconcile():
    """Observe every holding task, re-apply deploys that never happened, remove workloads nobody holds."""
    try:
        jobs.reconcile()
    except TransientRuntimeError:
        logger.warning("reconcile: the runtime could not be reached", exc_info=True)
