"""Celery tasks: thin, idempotent, taking ids (STYLE.md §6)."""

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def schedule_virtual_cluster(virtual_cluster_id):
    from scheduler.services import schedule_virtual_cluster as run_pass

    run_pass(virtual_cluster_id=virtual_cluster_id)


@shared_task(acks_late=True, ignore_result=True)
def schedule_all():
    from scheduler.services import schedule_all as run_all

    run_all()


@shared_task(acks_late=True, ignore_result=True)
def deploy_task(task_id):
    """Filled in by the runtimes work: apply the task's placements."""


@shared_task(acks_late=True, ignore_result=True)
def teardown_task(task_id):
    """Filled in by the runtimes work: archive logs, remove the instances."""


@shared_task(acks_late=True, ignore_result=True)
def reconcile():
    """Filled in by the runtimes work: observe instances, heal drift."""
