"""Work handed to Celery, always after the deciding transaction commits (STYLE.md §6).

Services call these; they take ids, never model instances. The Celery task is found by its name in
the app's registry when the message is sent, so the services never import the Celery tasks (which
import the services).
"""

from celery import current_app
from django.db import transaction


def _after_commit(task_name, *args):
    transaction.on_commit(lambda: current_app.tasks[task_name].delay(*args))


def deploy_after_commit(task_id):
    """Apply the task's placements through the runtime."""
    _after_commit("scheduler.tasks.deploy_task", task_id)


def teardown_after_commit(task_id):
    """Archive the logs of the task's instances and remove them from the runtime."""
    _after_commit("scheduler.tasks.teardown_task", task_id)
