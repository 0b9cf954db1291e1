"""Celery tasks of evaluations: thin, taking ids, safe to deliver twice."""

from celery import shared_task

from .services import evaluation_run, evaluations_fail_abandoned


@shared_task(acks_late=True, ignore_result=True, name="evaluations.tasks.run_evaluation")
def run_evaluation(evaluation_id):
    """Run the evaluation if it is still pending; a redelivered message finds it claimed and does nothing."""
    evaluation_run(evaluation_id=evaluation_id)


@shared_task(acks_late=True, ignore_result=True, name="evaluations.tasks.fail_abandoned_evaluations")
def fail_abandoned_evaluations():
    """Beat's safety net: runs whose worker died would otherwise stay running for ever."""
    evaluations_fail_abandoned()
