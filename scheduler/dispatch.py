"""Work handed to Celery, always after the deciding transaction commits (STYLE.md §6).

Services call these; they take ids, never model instances.
"""

from django.db import transaction


def _after_commit(task_name, *args):
    def send():
        from scheduler import tasks

        getattr(tasks, task_name).delay(*args)

    transaction.on_commit(send)


def deploy_after_commit(task_id):
    """Apply the task's placements through the runtime."""
    _after_commit("deploy_task", task_id)


def teardown_after_commit(task_id):
    """Archive the logs of the task's instances and remove them from the runtime."""
    _after_commit("teardown_task", task_id)


def schedule_after_commit(virtual_cluster_id):
    """Re-examine the VC's queue: GPUs were freed or the queue changed."""
    _after_commit("schedule_virtual_cluster", virtual_cluster_id)
