"""Notifications: which deliveries an event makes, and each delivery's attempt (by e-mail or webhook).

A state change is never held up by a notification: the timeline hook (``tasks.services.event_record``)
only sends a Celery message after commit; here ``event_notify`` writes the deliveries in the worker, and
each one is posted by its own Celery task, retried with back-off, its outcome recorded on its row.
A delivery's key names the event and the recipient: a redelivered message never notifies twice.
"""

import logging
from datetime import timedelta

import httpx
from celery import current_app
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from deploy_portal.messages import N_, Sentence, render
from evaluations.models import Evaluation, EvaluationStatus
from tasks.models import Task, TaskEvent
from tasks.states import Status

from . import webhooks
from .models import Delivery, DeliveryStatus, NotificationEvent, NotificationPreference, Webhook

logger = logging.getLogger(__name__)

TITLES = {
    NotificationEvent.RUNNING: N_("Task “%(task)s” is running"),
    NotificationEvent.FAILED: N_("Task “%(task)s” failed"),
    NotificationEvent.KILLED: N_("Task “%(task)s” was killed by a force start"),
    NotificationEvent.STOPPED_BY_OTHER: N_("Task “%(task)s” was stopped by %(who)s"),
    NotificationEvent.QUEUED_LONG: N_("Task “%(task)s” has waited %(minutes)s minutes in the queue"),
    NotificationEvent.EVALUATION_FINISHED: N_("The evaluation of task “%(task)s” finished"),
}
FINISHED = (EvaluationStatus.SUCCEEDED, EvaluationStatus.FAILED)
EVALUATION_FAILED = N_("The evaluation of task “%(task)s” failed")


class DeliveryError(Exception):
    """This attempt did not arrive; the Celery task tries again later, up to its retries."""


def event_kind(event, task):
    """The notification a timeline event is (a ``NotificationEvent``), or None."""
    if event.from_status == event.to_status:
        return None
    if event.to_status == Status.RUNNING:
        return NotificationEvent.RUNNING
    if event.to_status == Status.FAILED:
        return NotificationEvent.FAILED
    if event.to_status == Status.KILLED:
        return NotificationEvent.KILLED
    if event.to_status == Status.STOPPED and event.actor_id != task.owner_id:
        return NotificationEvent.STOPPED_BY_OTHER
    return None


def _link(name, pk):
    return settings.PORTAL_URL.rstrip("/") + reverse(name, args=[pk])


def _enqueue(delivery_id):
    transaction.on_commit(lambda: current_app.tasks["observability.tasks.deliver"].delay(delivery_id), robust=True)


def _deliveries(*, kind, task, key, title, text, link, user=None, owner_too=True, project_too=True):
    """Write the deliveries of one notice (the choices of ``user``, by default the task's owner, and the
    project's webhooks); enqueue them after commit."""
    wanted = {}
    user = user or task.owner
    if owner_too:
        preference = NotificationPreference.objects.select_related("webhook").filter(user=user, event=kind).first()
        if preference and preference.email and user.email:
            wanted[f"{key}:email:{user.email}"] = {"email": user.email}
        if preference and preference.webhook and preference.webhook.enabled:
            wanted[f"{key}:webhook:{preference.webhook_id}"] = {"webhook": preference.webhook}
    if project_too:
        for hook in Webhook.objects.filter(project_id=task.project_id, enabled=True):
            if kind in hook.events:
                wanted[f"{key}:webhook:{hook.pk}"] = {"webhook": hook}
    created = []
    for delivery_key, recipient in wanted.items():
        try:
            with transaction.atomic():
                delivery = Delivery.objects.create(
                    key=delivery_key, event=kind, task=task, title=title, text=text, link=link, **recipient,
                )
        except IntegrityError:  # written already (this notice was handled before)
            continue
        _enqueue(delivery.pk)
        created.append(delivery.pk)
    return created


def event_notify(*, event_id):
    """The deliveries of one timeline event (none when nobody asked for it). Returns the ids written."""
    event = TaskEvent.objects.select_related("task__owner", "actor").filter(pk=event_id).first()
    if event is None:
        return []
    task = event.task
    kind = event_kind(event, task)
    if kind is None:
        return []
    who = event.actor.get_username() if event.actor else Sentence(N_("the scheduler"))
    title = Sentence(TITLES[kind], task=task.name, who=who)
    text = event.message  # every transition writes its words (tasks.services.task_transition)
    return _deliveries(
        kind=kind, task=task, key=f"event:{event.pk}", title=title, text=text, link=_link("portal:task-detail", task.pk),
    )


def waits_notify(*, now=None):
    """Deliveries for the tasks queued longer than their owner's chosen minutes (a project's: the site's default)."""
    now = now or timezone.now()
    default = settings.NOTIFY_QUEUED_MINUTES
    minutes = dict(
        NotificationPreference.objects.filter(event=NotificationEvent.QUEUED_LONG).values_list("user_id", "queued_minutes")
    )
    shortest = min([default, *minutes.values()])
    created = []
    queued = Task.objects.queued().filter(queued_at__lte=now - timedelta(minutes=shortest)).select_related("owner")
    for task in queued:
        waited = (now - task.queued_at).total_seconds() / 60
        title = Sentence(TITLES[NotificationEvent.QUEUED_LONG], task=task.name, minutes=int(waited))
        created += _deliveries(
            kind=NotificationEvent.QUEUED_LONG, task=task, key=f"queued:{task.pk}:{task.queued_at.timestamp():.0f}",
            title=title, text=Sentence(N_("It is still waiting for free GPUs in its queue.")),
            link=_link("portal:task-detail", task.pk),
            owner_too=waited >= minutes.get(task.owner_id, default), project_too=waited >= default,
        )
    return created


def evaluations_notify(*, now=None):
    """Deliveries for the evaluations that finished in the last day and were not notified yet."""
    now = now or timezone.now()
    created = []
    finished = Evaluation.objects.filter(finished_at__gte=now - timedelta(days=1), status__in=FINISHED).select_related("task__owner", "created_by")
    for evaluation in finished:
        failed = evaluation.status == EvaluationStatus.FAILED
        title = Sentence(EVALUATION_FAILED if failed else TITLES[NotificationEvent.EVALUATION_FINISHED], task=evaluation.task.name)
        created += _deliveries(
            kind=NotificationEvent.EVALUATION_FINISHED, task=evaluation.task, key=f"evaluation:{evaluation.pk}",
            title=title, text=Sentence(N_("Its results are on the evaluation's page.")),
            link=_link("evaluations:detail", evaluation.pk), user=evaluation.created_by,
        )
    return created


def _notice(delivery):
    task = delivery.task
    return webhooks.Notice(
        event=delivery.event, title=render(delivery.title), text=render(delivery.text), link=delivery.link,
        task={
            "id": task.pk, "name": task.name, "status": task.status,
            "project": task.project.name, "virtual_cluster": task.virtual_cluster.name,
        } if task else {},
        open_label=_("Open in the portal"),
    )


def _post(delivery):
    hook = delivery.webhook
    request = webhooks.build_request(kind=hook.kind, url=hook.url, secret=hook.secret, notice=_notice(delivery), now=timezone.now())
    try:
        response = httpx.post(
            request.url, content=request.body, headers=request.headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    try:
        payload = response.json()
    except ValueError:
        payload = None
    error = webhooks.answer_error(hook.kind, response.status_code, payload)
    if error:
        raise DeliveryError(error)


def _mail(delivery):
    notice = _notice(delivery)
    try:
        send_mail(notice.title, f"{notice.text}\n\n{notice.link}", None, [delivery.email])
    except Exception as exc:  # noqa: BLE001 - smtplib and sockets raise many kinds; each is one failed attempt
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


def delivery_attempt(*, delivery_id, final=False):
    """Try one pending delivery once; record the outcome. Raises DeliveryError to be retried, unless ``final``.

    A webhook whose deliveries failed for good ``WEBHOOK_DISABLE_AFTER`` times in a row is disabled and its
    owner mailed. Returns the delivery's status, or None when it was not pending.
    """
    delivery = Delivery.objects.select_related("webhook", "task__project", "task__virtual_cluster").filter(
        pk=delivery_id, status=DeliveryStatus.PENDING
    ).first()
    if delivery is None:
        return None
    Delivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") + 1)
    try:
        with translation.override(settings.LANGUAGE_CODE):
            _post(delivery) if delivery.webhook else _mail(delivery)
    except DeliveryError as exc:
        if not final:
            Delivery.objects.filter(pk=delivery.pk).update(error=str(exc))
            raise
        Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, error=str(exc))
        if delivery.webhook:
            _webhook_failed(delivery.webhook)
        return DeliveryStatus.FAILED
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SENT, error="", sent_at=timezone.now())
    if delivery.webhook:
        Webhook.objects.filter(pk=delivery.webhook_id).update(consecutive_failures=0)
    return DeliveryStatus.SENT


def _webhook_failed(hook):
    Webhook.objects.filter(pk=hook.pk).update(consecutive_failures=F("consecutive_failures") + 1)
    disabled = Webhook.objects.filter(
        Q(pk=hook.pk), Q(enabled=True), Q(consecutive_failures__gte=settings.WEBHOOK_DISABLE_AFTER)
    ).update(enabled=False)
    if disabled and hook.owner.email:
        with translation.override(settings.LANGUAGE_CODE):
            subject = _("Webhook “%(name)s” was disabled") % {"name": hook.name}
            body = _(
                "The last %(count)s notifications to your webhook “%(name)s” (%(url)s) could not be delivered, "
                "so it was disabled. The reasons are in the deliveries' list; enable it again once it answers."
            ) % {"count": settings.WEBHOOK_DISABLE_AFTER, "name": hook.name, "url": hook.url}
        try:
            send_mail(subject, body, None, [hook.owner.email])
        except Exception:  # noqa: BLE001 - the webhook is disabled either way
            logger.exception("could not tell the owner of webhook %s that it was disabled", hook.pk)


# What a user changes on the notifications page.

def preferences_save(*, user, choices, queued_minutes):
    """Write ``user``'s choice per event: ``choices`` {event: (email, webhook or None)}; a webhook must be theirs."""
    with transaction.atomic():
        for event, (email, webhook) in choices.items():
            if webhook is not None and webhook.owner_id != user.pk:
                raise ValueError("a preference names only the user's own webhooks")
            NotificationPreference.objects.update_or_create(
                user=user, event=event,
                defaults={"email": email, "webhook": webhook, "queued_minutes": queued_minutes},
            )


def webhook_create(*, user, name, kind, url, secret=""):
    """A webhook of the user's own (a project's webhooks are set by managers in the admin)."""
    return Webhook.objects.create(owner=user, name=name, kind=kind, url=url, secret=secret)


def webhook_set_enabled(*, webhook, enabled):
    """Enable (its failure count starts again) or disable a webhook."""
    Webhook.objects.filter(pk=webhook.pk).update(enabled=enabled, consecutive_failures=0)
