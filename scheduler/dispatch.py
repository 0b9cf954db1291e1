"""Work handed to Celery, always after the deciding transaction commits (STYLE.md §6).

Services call these; they take ids, never model instances. The Celery task is found by its name in
the app's registry when the message is sent, so the services never import the Celery tasks (which
import the services).
"""

import logging

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def send(task_name, *args):
    """Send now; a broker that cannot be reached is logged, not raised: the change is committed already, and
    ``reconcile`` picks up what was not delivered (a run never applied is applied, workloads of ended runs go)."""
    try:
        current_app.tasks[task_name].delay(*args)
    except Exception:  # noqa: BLE001 - kombu raises many kinds; the answer must be the saved state
        logger.exception("could not send %s%r to the broker; reconcile will pick it up", task_name, args)


def _after_commit(task_name, *args):
    transaction.on_commit(lambda: send(task_name, *args))


def deploy_after_commit(task_id, run_id):
    """Apply the placements of the task's run ``run_id`` through the runtime."""
    _after_commit("scheduler.tasks.deploy_task", task_id, run_id)


def teardown_after_commit(task_id, run_id):
    """Archive the logs of the run's instances and remove them from the runtime (whatever the task does next)."""
    _after_commit("scheduler.tasks.teardown_task", task_id, run_id)
