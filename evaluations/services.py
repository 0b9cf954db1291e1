"""Evaluation runs: the only place that creates them and moves them between states."""

import logging

from celery import current_app
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks.access import check_action
from tasks.exceptions import OperationRefused
from tasks.models import Task
from tasks.secrets import env_public
from tasks.states import Action, Status

from . import loadgen
from .metrics import summarize
from .models import ACTIVE_STATUSES, HEARTBEAT_EVERY, Evaluation, EvaluationStatus, FailureReason

logger = logging.getLogger(__name__)

PARAMETER_FIELDS = (
    "endpoint_kind", "model_name", "prompt", "max_tokens", "request_count", "concurrency", "request_rate",
    "timeout_seconds",
)
RUN_EVALUATION = "evaluations.tasks.run_evaluation"
# How often a run looks at its task while it goes.
TASK_CHECK_SECONDS = 1.0


def task_config_snapshot(task) -> dict:
    """What distinguishes a copy of a task from another, as it was when the run was started."""
    return {
        "image": task.image,
        "sku_count": task.sku_count,
        "replicas": task.replicas,
        "gpu_type": task.virtual_cluster.gpu_type,
        "env": env_public(task.env),  # a secret as •••• (tasks.secrets)
    }


def evaluation_create(*, task, user, parameters) -> Evaluation:
    """Start an evaluation of ``task`` by ``user`` with ``parameters`` (names of PARAMETER_FIELDS).

    Raises ValidationError for bad parameters (nothing saved), PermissionDenied / InvalidTransition unless
    the task is running, OperationRefused when it has no endpoint or a run of it is already under way.
    The run is handed to a Celery worker once the transaction commits.
    """
    unknown = set(parameters) - set(PARAMETER_FIELDS)
    if unknown:
        raise ValueError(f"unknown evaluation parameters: {sorted(unknown)}")
    evaluation = Evaluation(task=task, created_by=user, **parameters)
    evaluation.full_clean(exclude=["task", "created_by"], validate_constraints=False)
    with transaction.atomic():
        task = Task.objects.select_for_update(of=("self",)).select_related("virtual_cluster").get(pk=task.pk)
        evaluation_check(task=task, user=user)
        _refuse_if_busy(task)
        evaluation.task = task
        evaluation.endpoint = task.endpoint
        evaluation.task_config = task_config_snapshot(task)
        try:
            with transaction.atomic():
                evaluation.save()
        except IntegrityError as exc:  # the constraint, should another run have slipped in
            raise OperationRefused(_("An evaluation of task “%(task)s” is already under way.")
                                   % {"task": task.name}) from exc
        transaction.on_commit(lambda: _hand_over(evaluation.pk))
    return evaluation


def _hand_over(evaluation_id):
    """Send the run to an evaluations worker (by name from the app's registry: the Celery task module imports
    these services). A broker that cannot be reached fails the run at once, saying so, rather than leave a
    pending run that blocks the task's next evaluation until it counts as abandoned. A sent run records when:
    one never sent (this process died first) counts as lost after NEVER_SENT, not after QUEUE_WAIT."""
    try:
        current_app.tasks[RUN_EVALUATION].delay(evaluation_id)
        Evaluation.objects.filter(pk=evaluation_id, sent_at=None).update(sent_at=timezone.now())
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds; the run is saved, the answer stands
        logger.exception("evaluation %s could not be handed to a worker", evaluation_id)
        Evaluation.objects.filter(pk=evaluation_id, status=EvaluationStatus.PENDING).update(
            status=EvaluationStatus.FAILED, failure_reason=FailureReason.ABANDONED,
            failure_detail=f"{type(exc).__name__}: {exc}"[:1000], finished_at=timezone.now(),
        )


def evaluation_check(*, task, user):
    """Raise (PermissionDenied, InvalidTransition, OperationRefused) unless ``user`` may evaluate ``task`` in
    its current state: it must be running with an endpoint. Whether a run is under way is checked on start."""
    check_action(task=task, user=user, action=Action.EVALUATE)
    if not task.endpoint:
        raise OperationRefused(_("Task “%(task)s” has no endpoint to evaluate: it exposes no port.")
                               % {"task": task.name})


def _refuse_if_busy(task):
    now = timezone.now()
    for active in Evaluation.objects.select_for_update().filter(task=task, status__in=ACTIVE_STATUSES):
        if active.is_abandoned(now):
            _finish(active, EvaluationStatus.FAILED, FailureReason.ABANDONED)
            continue
        raise OperationRefused(
            _("Evaluation #%(id)s of task “%(task)s” is still %(status)s; wait for it to finish.")
            % {"id": active.pk, "task": task.name, "status": str(active.get_status_display()).lower()}
        )


def evaluations_fail_abandoned() -> list[int]:
    """Fail every active run past its longest possible duration (its worker went away); the ids failed."""
    now = timezone.now()
    failed = []
    with transaction.atomic():
        for evaluation in Evaluation.objects.select_for_update(skip_locked=True).active():
            if evaluation.is_abandoned(now):
                _finish(evaluation, EvaluationStatus.FAILED, FailureReason.ABANDONED)
                failed.append(evaluation.pk)
    return failed


def _finish(evaluation, status, reason="", detail="", results=None, *, expected=ACTIVE_STATUSES):
    """End the run as ``status`` if it is still in one of ``expected``: a run the safety net already called
    abandoned is not overwritten by its worker coming back with results. Answers whether it was ended here."""
    now = timezone.now()
    fields = {"status": status, "failure_reason": reason, "failure_detail": detail, "finished_at": now,
              "requests_done": evaluation.requests_done}
    if results is not None:
        fields["results"] = results
    ended = Evaluation.objects.filter(pk=evaluation.pk, status__in=expected).update(**fields)
    if ended:
        for name, value in fields.items():
            setattr(evaluation, name, value)
    else:
        logger.warning("evaluation %s was no longer %s: not marked %s", evaluation.pk, "/".join(expected), status)
        evaluation.refresh_from_db()
    return bool(ended)


def _task_is_running(task_id) -> bool:
    return Task.objects.filter(pk=task_id, status=Status.RUNNING).exists()


def _claim(evaluation_id):
    """pending -> running, once: a second delivery of the same run finds nothing to claim."""
    now = timezone.now()
    claimed = Evaluation.objects.filter(pk=evaluation_id, status=EvaluationStatus.PENDING).update(
        status=EvaluationStatus.RUNNING, started_at=now, heartbeat_at=now,
    )
    return Evaluation.objects.select_related("task").get(pk=evaluation_id) if claimed else None


def evaluation_run(*, evaluation_id) -> Evaluation | None:
    """Run a pending evaluation to its end; None if it is not pending (already run, or running elsewhere).

    Ends ``succeeded`` when every request was sent (failed requests are counted in the results), or
    ``failed`` with a reason: the task stopped running (the figures measured so far are kept), the endpoint
    could not be asked for its model, or no request succeeded.
    """
    evaluation = _claim(evaluation_id)
    if evaluation is None:
        return None
    if not _task_is_running(evaluation.task_id):
        _finish(evaluation, EvaluationStatus.FAILED, FailureReason.TASK_NOT_RUNNING)
        return evaluation
    model = evaluation.model_name
    if not model:
        try:
            model = loadgen.first_model(evaluation.endpoint, timeout=min(evaluation.timeout_seconds, 30.0))
        except loadgen.EndpointError as exc:
            _finish(evaluation, EvaluationStatus.FAILED, FailureReason.NO_MODEL, str(exc))
            return evaluation
        evaluation.model_name = model
        evaluation.save(update_fields=["model_name"])
    spec = loadgen.LoadSpec(
        base_url=evaluation.endpoint,
        endpoint_kind=evaluation.endpoint_kind,
        model=model,
        prompts=(evaluation.prompt,) if evaluation.prompt else loadgen.BUILTIN_PROMPTS,
        max_tokens=evaluation.max_tokens,
        request_count=evaluation.request_count,
        concurrency=evaluation.concurrency,
        request_rate=evaluation.request_rate,
        timeout=evaluation.timeout_seconds,
    )

    beat = {"at": timezone.now(), "done": 0}

    def keep_going(done):
        """The run's heartbeat and progress (written when it moved, or every HEARTBEAT_EVERY), and whether to go
        on: not once the run was ended meanwhile (abandoned by the safety net) or the task stopped running."""
        now = timezone.now()
        if done != beat["done"] or now - beat["at"] >= HEARTBEAT_EVERY:
            still_running = Evaluation.objects.filter(pk=evaluation.pk, status=EvaluationStatus.RUNNING).update(
                requests_done=done, heartbeat_at=now,
            )
            if not still_running:
                return False
            beat.update(at=now, done=done)
        return _task_is_running(evaluation.task_id)

    outcome = loadgen.run_load(spec, keep_going=keep_going, check_every=TASK_CHECK_SECONDS)
    evaluation.requests_done = len(outcome.records)
    results = summarize(outcome.records, outcome.duration)
    results["stopped_early"] = outcome.stopped
    running = (EvaluationStatus.RUNNING,)
    if outcome.stopped or not _task_is_running(evaluation.task_id):
        _finish(evaluation, EvaluationStatus.FAILED, FailureReason.TASK_STOPPED, results=results, expected=running)
    elif results["completed"] == 0:
        first = results["errors"][0] if results["errors"] else ""
        _finish(evaluation, EvaluationStatus.FAILED, FailureReason.NO_SUCCESS, first, results=results, expected=running)
    else:
        _finish(evaluation, EvaluationStatus.SUCCEEDED, results=results, expected=running)
    logger.info("evaluation %s of task %s: %s", evaluation.pk, evaluation.task_id, evaluation.status)
    return evaluation
