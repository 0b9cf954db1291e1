"""Notifications: a webhook receiver on loopback gets the Feishu card, the DingTalk message and the JSON body,
signed; a 500 is retried; a webhook failing for good is disabled and its owner told; state changes never wait."""

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail

from deploy_portal.messages import N_, Sentence
from observability import notifications
from observability import tasks as observability_tasks
from observability.models import (
    Delivery, DeliveryStatus, NotificationEvent, NotificationPreference, Webhook, WebhookKind,
)
from scheduler import services
from tasks.models import TaskEvent
from tasks.states import Status
from tests.factories import ManagerFactory, NodeFactory, TaskFactory, UserFactory, VirtualClusterFactory

pytestmark = pytest.mark.django_db

FAILURE = Sentence(N_("The process exited with code %(code)s — check the command and the log."), code=3)


class Receiver:
    """An HTTP server on loopback that records every POST and answers the statuses it is told, in turn."""

    def __init__(self, port):
        self.received, self.answers = [], []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, answer = receiver.answers.pop(0) if receiver.answers else (200, {"code": 0, "errcode": 0})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    low, high = settings.NODEPORT_RANGE
    for port in range(high - 9, high + 1):  # the top of this run's own ports
        try:
            server = Receiver(port)
            break
        except OSError:
            continue
    else:
        pytest.fail("no free port for the receiver")
    yield server
    server.close()


@pytest.fixture
def failed(db, monkeypatch):
    """A task of olga's that failed, and the timeline event of its failure."""
    from scheduler import tasks

    for name in ("deploy_task", "teardown_task"):
        monkeypatch.setattr(getattr(tasks, name), "delay", lambda *args: None)
    owner = UserFactory(username="olga", email="olga@example.com")
    vc = VirtualClusterFactory(name="h100")
    NodeFactory(virtual_cluster=vc, sku_capacity=8)
    task = services.task_start(task=TaskFactory(virtual_cluster=vc, owner=owner, name="qwen"), user=owner)
    services.task_fail(task_id=task.pk, reason=FAILURE)
    event = TaskEvent.objects.get(task=task, to_status=Status.FAILED)
    return task, event


def hook(owner, receiver, kind, **fields):
    return Webhook.objects.create(name=f"{kind} hook", kind=kind, url=f"{receiver.url}/{kind}", owner=owner, **fields)


def deliver_all(ids):
    for delivery_id in ids:
        observability_tasks.deliver.apply(args=(delivery_id,))
    return list(Delivery.objects.filter(pk__in=ids).order_by("pk"))


def test_the_feishu_card_arrives_signed_with_the_failure_in_the_sites_language(failed, receiver):
    task, event = failed
    feishu = hook(task.owner, receiver, WebhookKind.FEISHU, secret="feishu-secret")
    NotificationPreference.objects.create(user=task.owner, event=NotificationEvent.FAILED, webhook=feishu, email=True)

    ids = notifications.event_notify(event_id=event.pk)
    assert notifications.event_notify(event_id=event.pk) == []  # a redelivered message notifies nobody twice
    sent = deliver_all(ids)

    assert [(d.status, d.attempts) for d in sent] == [(DeliveryStatus.SENT, 1)] * 2
    body = json.loads(receiver.received[0]["body"])
    assert receiver.received[0]["path"] == "/feishu"
    assert body["msg_type"] == "interactive"
    assert body["card"]["header"]["title"]["content"] == "任务“qwen”失败了"
    assert "退出码 3" in body["card"]["elements"][0]["text"]["content"]
    assert body["card"]["elements"][1]["actions"][0]["url"] == f"http://127.0.0.1:8000/tasks/{task.pk}/"
    key = f"{body['timestamp']}\nfeishu-secret".encode()
    assert body["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert [m.to for m in mail.outbox] == [["olga@example.com"]]
    assert mail.outbox[0].subject == "任务“qwen”失败了"


def test_the_json_body_is_signed_with_hmac_and_a_500_is_retried(failed, receiver, settings):
    task, event = failed
    plain = hook(task.owner, receiver, WebhookKind.JSON, secret="s3cret")
    NotificationPreference.objects.create(user=task.owner, event=NotificationEvent.FAILED, webhook=plain)
    receiver.answers = [(500, {"error": "busy"}), (500, {"error": "busy"})]

    [delivery] = deliver_all(notifications.event_notify(event_id=event.pk))

    assert (delivery.status, delivery.attempts, delivery.error) == (DeliveryStatus.SENT, 3, "")
    assert len(receiver.received) == 3
    last = receiver.received[-1]
    timestamp, signature = last["headers"]["X-Deploy-Portal-Timestamp"], last["headers"]["X-Deploy-Portal-Signature"]
    expected = hmac.new(b"s3cret", f"{timestamp}.".encode() + last["body"], hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    body = json.loads(last["body"])
    assert body["event"] == "failed"
    assert body["task"] == {"id": task.pk, "name": "qwen", "status": "failed", "project": task.project.name, "virtual_cluster": "h100"}
    assert observability_tasks.deliver.retry_backoff == settings.NOTIFY_RETRY_BACKOFF_SECONDS
    assert observability_tasks.deliver.autoretry_for == (notifications.DeliveryError,)


def test_the_dingtalk_message_is_signed_in_its_url(failed, receiver):
    task, event = failed
    ding = hook(task.owner, receiver, WebhookKind.DINGTALK, secret="ding-secret")
    NotificationPreference.objects.create(user=task.owner, event=NotificationEvent.FAILED, webhook=ding)
    deliver_all(notifications.event_notify(event_id=event.pk))
    query = parse_qs(urlsplit(receiver.received[0]["path"]).query)
    timestamp, sign = query["timestamp"][0], query["sign"][0]
    expected = hmac.new(b"ding-secret", f"{timestamp}\nding-secret".encode(), hashlib.sha256).digest()
    assert sign == base64.b64encode(expected).decode()
    assert json.loads(receiver.received[0]["body"])["msgtype"] == "markdown"


def test_a_webhook_failing_for_good_is_recorded_disabled_and_its_owner_told(failed, receiver, settings):
    settings.WEBHOOK_DISABLE_AFTER = 2
    task, event = failed
    manager = ManagerFactory(username="boss", email="boss@example.com")
    project_hook = hook(manager, receiver, WebhookKind.FEISHU, project=task.project, events=["failed"])
    receiver.answers = [(200, {"code": 19021, "msg": "sign match fail"})] * 20

    [first] = deliver_all(notifications.event_notify(event_id=event.pk))
    assert (first.status, first.attempts) == (DeliveryStatus.FAILED, settings.NOTIFY_MAX_RETRIES + 1)
    assert first.error == "Feishu: 19021 sign match fail"
    project_hook.refresh_from_db()
    assert (project_hook.enabled, project_hook.consecutive_failures) == (True, 1)

    again = TaskEvent.objects.create(task=task, from_status="running", to_status="failed", operation="fail", message=FAILURE)
    deliver_all(notifications.event_notify(event_id=again.pk))
    project_hook.refresh_from_db()
    assert (project_hook.enabled, project_hook.consecutive_failures) == (False, 2)
    assert [m.to for m in mail.outbox] == [["boss@example.com"]]
    assert "“feishu hook”" in mail.outbox[0].subject
    third = TaskEvent.objects.create(task=task, from_status="running", to_status="failed", operation="fail", message=FAILURE)
    assert notifications.event_notify(event_id=third.pk) == []  # a disabled webhook is not posted to


def test_a_state_change_only_sends_a_message_after_commit_and_a_dead_broker_does_not_undo_it(
    failed, monkeypatch, django_capture_on_commit_callbacks
):
    failed_task, _event = failed
    task = TaskFactory(virtual_cluster=failed_task.virtual_cluster, owner=failed_task.owner, name="fresh")
    sent = []
    monkeypatch.setattr(observability_tasks.event_recorded, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        started = services.task_start(task=task, user=task.owner)
        assert sent == []
    placed = TaskEvent.objects.filter(task=task).latest("id")
    assert started.status == Status.DEPLOYING and sent == [placed.pk]

    def broker_down(event_id):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(observability_tasks.event_recorded, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        services.task_stop(task=started, user=task.owner)
    task.refresh_from_db()
    assert task.status == Status.STOPPED


@pytest.mark.parametrize("actor_is_owner, notified", [(True, False), (False, True)])
def test_a_stop_is_told_only_when_someone_else_did_it(failed, actor_is_owner, notified):
    task, _event = failed
    NotificationPreference.objects.create(user=task.owner, event=NotificationEvent.STOPPED_BY_OTHER, email=True)
    actor = task.owner if actor_is_owner else ManagerFactory(username="boss")
    event = TaskEvent.objects.create(task=task, from_status="running", to_status="stopped", operation="stop", actor=actor)
    assert bool(notifications.event_notify(event_id=event.pk)) is notified


def test_a_task_queued_longer_than_its_owners_minutes_is_told_once(db, settings):
    from django.utils import timezone

    owner = UserFactory(username="olga", email="olga@example.com")
    NotificationPreference.objects.create(user=owner, event=NotificationEvent.QUEUED_LONG, email=True, queued_minutes=10)
    now = timezone.now()
    waiting = TaskFactory(owner=owner, status=Status.QUEUED, queued_at=now - timezone.timedelta(minutes=12))
    TaskFactory(owner=owner, status=Status.QUEUED, queued_at=now - timezone.timedelta(minutes=5))
    [delivery_id] = notifications.waits_notify(now=now)
    assert notifications.waits_notify(now=now + timezone.timedelta(minutes=1)) == []
    delivery = Delivery.objects.get(pk=delivery_id)
    assert (delivery.task_id, delivery.email) == (waiting.pk, "olga@example.com")


def test_an_evaluation_that_finished_is_told_to_whoever_started_it_once(failed, settings):
    from django.utils import timezone

    from evaluations.models import Evaluation, EvaluationStatus

    task, _event = failed
    runner = UserFactory(username="rita", email="rita@example.com")
    NotificationPreference.objects.create(user=runner, event=NotificationEvent.EVALUATION_FINISHED, email=True)
    now = timezone.now()
    done = Evaluation.objects.create(task=task, created_by=runner, status=EvaluationStatus.FAILED, finished_at=now)
    Evaluation.objects.create(task=task, created_by=runner, status=EvaluationStatus.RUNNING)
    [delivery_id] = notifications.evaluations_notify(now=now)
    assert notifications.evaluations_notify(now=now) == []
    delivery = Delivery.objects.get(pk=delivery_id)
    assert (delivery.email, delivery.link) == ("rita@example.com", f"http://127.0.0.1:8000/evaluations/{done.pk}/")
    deliver_all([delivery_id])
    assert mail.outbox[-1].subject == "任务“qwen”的评测失败了"
