"""Services that own every change to a task. Scheduling operations live in ``scheduler.services``.

Each service checks, changes state inside one transaction and writes the timeline
event in the same transaction.
"""

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from deploy_portal.messages import N_, Sentence

from .access import check_action
from .exceptions import InvalidTransition
from .models import Task, TaskEvent, TaskMount, TaskRun
from .secrets import SecretUnreadable, env_reseal, env_resolve, env_seal, is_secret
from .states import TRANSITIONS, Action, Status
from .validation import NAME_MAX_LENGTH, clean_mount_path, validate_task_config

CONFIG_FIELDS = (
    "name", "project", "task_type", "image", "virtual_cluster", "sku_count", "replicas", "expose_port",
    "container_port", "external_port", "description", "env", "command", "args", "priority_class", "public_endpoint",
)
# Fixed at creation: a copy keeps them.
FIXED_ON_COPY = ("task_type", "project")


def task_config(task):
    """A task's configuration as the create form holds it (relations as instances)."""
    data = {field: getattr(task, field) for field in CONFIG_FIELDS}
    data["env"] = [dict(item) for item in task.env]
    data["command"], data["args"] = list(task.command), list(task.args)
    data["mounts"] = [{"storage": m.storage, "mount_path": m.mount_path} for m in task.mounts.all()]
    return data


def _normalise(data, saved_env=()):
    """The input as validation reads it; env resolved (``tasks.secrets``): a secret sent without its value keeps
    the one saved under its name in ``saved_env``, the task edited or copied."""
    data = dict(data)
    if not data.get("expose_port"):
        data["external_port"] = None
    data["env"] = env_resolve(
        [{**e, "name": str(e.get("name", "")).strip()} if isinstance(e, dict) else e for e in data.get("env") or []],
        saved_env,
    )
    data["name"] = str(data.get("name") or "").strip()
    data["image"] = str(data.get("image") or "").strip()
    data.setdefault("description", "")
    data["description"] = data["description"] or ""
    data["public_endpoint"] = data.get("public_endpoint", False)
    return data


def _write_mounts(task, mounts):
    task.mounts.all().delete()
    TaskMount.objects.bulk_create(
        TaskMount(task=task, storage=m["storage"], mount_path=clean_mount_path(m["mount_path"])) for m in mounts
    )


def _announce(event):
    """After commit, tell ``settings.TASK_EVENT_HANDLERS`` (Celery tasks, by name) of a state change.

    ``robust``: a broker that cannot be reached is logged, never raised into whoever changed the state.
    """
    if event.from_status == event.to_status:
        return
    for name in settings.TASK_EVENT_HANDLERS:
        transaction.on_commit(lambda name=name: current_app.tasks[name].delay(event.pk), robust=True)


def event_record(*, task, operation, actor=None, message="", from_status=None, to_status=None):
    event = TaskEvent.objects.create(
        task=task,
        operation=operation,
        actor=actor if (actor is not None and actor.is_authenticated) else None,
        message=message,
        from_status=from_status if from_status is not None else task.status,
        to_status=to_status if to_status is not None else task.status,
    )
    _announce(event)
    return event


@transaction.atomic
def task_create(*, user, data, secrets_from=None):
    """Create a task in ``not_deployed`` from a validated configuration (a copy keeps the secrets of
    ``secrets_from`` that it sends without a value)."""
    data = _normalise(data, secrets_from.env if secrets_from is not None else ())
    validate_task_config(user=user, data=data)
    data["env"] = env_seal(data["env"])
    task = Task.objects.create(owner=user, **{f: data.get(f) for f in CONFIG_FIELDS if f in data})
    _write_mounts(task, data.get("mounts") or [])
    event_record(task=task, operation="create", actor=user, message=Sentence(N_("Task created.")))
    return task


def _lock(task):
    """Lock the task's row alone (``of=self``): an edit never holds its VC's row, so it neither deadlocks with a
    start (which locks the VC, then the task) nor makes the scheduling pass skip the VC."""
    return Task.objects.select_for_update(of=("self",)).select_related("virtual_cluster", "project").get(pk=task.pk)


def grants_holder(*, task, user):
    """Whose grants an edit of ``task`` by ``user`` is checked against.

    The configuration must be valid for whoever runs the task: a member edits with their own
    grants; a manager outside the project edits on behalf of the task's owner.
    """
    return user if task.project.members.filter(pk=user.pk).exists() else task.owner


def task_update_check(*, task, user, data):
    """The configuration ``task_update`` would save (env resolved, not sealed yet); raises ValidationError as it
    would. The admin's form calls it to put the messages next to its fields."""
    for field in FIXED_ON_COPY:
        if field in data and data[field] != getattr(task, field):
            raise ValidationError({field: [_("This field cannot be changed after creation.")]})
    merged = _normalise({**task_config(task), **data}, task.env)
    validate_task_config(user=grants_holder(task=task, user=user), data=merged, task=task)
    return merged


@transaction.atomic
def task_update(*, task, user, data):
    """Edit a task's configuration; only while it holds nothing and is not queued."""
    task = _lock(task)
    check_action(task=task, user=user, action=Action.EDIT)
    merged = task_update_check(task=task, user=user, data=data)
    merged["env"] = env_seal(merged["env"])
    for field in CONFIG_FIELDS:
        setattr(task, field, merged[field])
    task.save()
    if "mounts" in data:
        _write_mounts(task, merged["mounts"])
    event_record(task=task, operation="edit", actor=user, message=Sentence(N_("Configuration edited.")))
    return task


@transaction.atomic
def task_delete(*, task, user):
    """Delete a task; only while it holds nothing and is not queued."""
    task = _lock(task)
    check_action(task=task, user=user, action=Action.DELETE)
    task.delete()


@transaction.atomic
def task_copy(*, task, user, overrides=None):
    """A new ``not_deployed`` task from ``task``; every field may change but task type and project."""
    overrides = dict(overrides or {})
    errors = {
        field: [_("A copy keeps the task type and project of its source.")]
        for field in FIXED_ON_COPY
        if field in overrides and overrides[field] != getattr(task, field)
    }
    if errors:
        raise ValidationError(errors)
    data = {**task_config(task), **overrides}
    if "name" not in overrides:
        suffix = _(" (copy)")
        data["name"] = task.name[: NAME_MAX_LENGTH - len(suffix)] + suffix
    new = task_create(user=user, data=data, secrets_from=task)
    event_record(task=new, operation="copy", actor=user, message=Sentence(N_("Copied from task #%(id)s."), id=task.pk))
    return new


def env_secrets_rotate():
    """Seal every saved secret env var again with the first of the configured keys (after a new key was put first
    in ``ENV_SECRET_KEYS``): ``(tasks changed, tasks whose secrets no key opens)``. Each task in its own
    transaction, its row locked: an edit meanwhile is neither lost nor overwritten."""
    changed, unreadable = 0, []
    for pk in Task.objects.order_by("pk").values_list("pk", flat=True).iterator():
        with transaction.atomic():
            task = Task.objects.select_for_update(of=("self",)).only("pk", "env").get(pk=pk)
            if not any(is_secret(item) for item in task.env):
                continue
            try:
                task.env = env_reseal(task.env)
            except SecretUnreadable:
                unreadable.append(pk)
                continue
            Task.objects.filter(pk=pk).update(env=task.env)
            changed += 1
    return changed, unreadable


def run_config(task):
    """What a run ran with (``TaskRun.config``): image, SKUs, replicas, env names (not values), mounts, command."""
    return {
        "image": task.image, "sku_count": task.sku_count, "replicas": task.replicas,
        "gpu_type": task.virtual_cluster.gpu_type, "sku_gpus": task.virtual_cluster.sku_gpus,
        "env_names": [str(item.get("name", "")) for item in task.env],
        "mounts": [{"storage": m.storage.name, "mount_path": m.mount_path} for m in task.mounts.select_related("storage")],
        "command": list(task.command), "args": list(task.args),
        "expose_port": task.expose_port, "container_port": task.container_port,
    }


def bulk_current_runs(tasks):
    """Give each of ``tasks`` (rows written in bulk, as benchmarks and fixtures build a world) a current run,
    numbered after its last one: {task id: run}."""
    last = dict(
        TaskRun.objects.filter(task__in=tasks).values("task_id").annotate(last=Max("number")).values_list("task_id", "last")
    )
    runs = TaskRun.objects.bulk_create(
        [TaskRun(task=task, number=last.get(task.pk, 0) + 1, placed_at=task.started_at, queued_at=task.queued_at)
         for task in tasks],
        batch_size=2000,
    )
    for task, run in zip(tasks, runs, strict=True):
        task.current_run = run
    Task.objects.bulk_update(tasks, ["current_run"], batch_size=2000)
    return {run.task_id: run for run in runs}


def _move_run(task, row, *, actor, message, now, killed_for=None):
    """What ``row`` does to the task's run: start a new one, stamp the current one, or end it.

    A task queued without a run (rows written by hand) gets one when it is placed.
    """
    if row.run == "start" or (row.run == "placed" and task.current_run_id is None):
        last = TaskRun.objects.filter(task_id=task.pk).aggregate(last=Max("number"))["last"] or 0
        run = TaskRun.objects.create(
            task_id=task.pk, number=last + 1, started_by=actor if actor is not None and actor.is_authenticated else None,
            queued_at=now if row.target == Status.QUEUED else None,
            placed_at=now if row.target == Status.DEPLOYING else None,
            config=run_config(task),
        )
        Task.objects.filter(pk=task.pk).update(current_run=run)
        task.current_run = run
        return
    runs = TaskRun.objects.filter(pk=task.current_run_id, ended_at__isnull=True)
    if row.run == "placed":
        runs.update(placed_at=now)
    elif row.run == "running":
        runs.update(running_at=now)
    else:  # end: the outcome is the state the task ends in
        killer = actor if row.target == Status.KILLED and actor is not None and actor.is_authenticated else None
        runs.update(ended_at=now, outcome=row.target, reason=message, killed_by=killer, killed_for=killed_for)


def task_transition(*, task, transition, actor=None, message="", operation=None, killed_for=None, **fields):
    """Move ``task`` along one row of the transition table, or raise InvalidTransition.

    The row is locked, then changed by a conditional ``UPDATE … WHERE status IN (sources)``:
    two concurrent transitions of one task cannot both win. Writes the timeline event and moves the task's run
    (``Transition.run``: a start opens run N+1, an end closes the current one with its outcome and reason);
    call inside a transaction. Returns the task as it now is.
    """
    row = TRANSITIONS[transition]
    current = (
        Task.objects.select_for_update(of=("self",)).filter(pk=task.pk)
        .values_list("status", "pinned", "current_run_id").first()
    )
    status, pinned, run_id = current if current else (task.status, task.pinned, None)
    updated = current is not None and status in row.sources
    if updated:
        updated = Task.objects.filter(pk=task.pk, status__in=row.sources).update(status=row.target, **fields)
    if not updated:
        task.status, task.pinned = status, pinned
        raise InvalidTransition(task=task, action=operation or transition, status=status, pinned=pinned)
    task.status, task.current_run_id = row.target, run_id
    for key, value in fields.items():
        setattr(task, key, value)
    message = message or Sentence(row.label)
    _move_run(task, row, actor=actor, message=message, now=timezone.now(), killed_for=killed_for)
    event_record(
        task=task, operation=operation or transition, actor=actor, message=message,
        from_status=status, to_status=row.target,
    )
    return task
