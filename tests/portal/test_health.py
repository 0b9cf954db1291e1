"""The platform's health: heartbeats decide who is up, /healthz, /readyz and /api/v1/health/ say it as JSON, the
banner tells everyone (and managers which process, since when), and the task page says it waits for a worker."""

import functools

import pytest
from django.urls import reverse
from django.utils import timezone
from pytest_django.asserts import assertContains, assertNotContains

from observability import services
from observability.health import BEAT, DEPLOY_WORKER, EVALUATIONS_WORKER, platform_health
from observability.models import WorkerHeartbeat
from tasks.models import InstanceStatus, TaskInstance
from tasks.states import Status
from tests.api.conftest import api_client
from tests.factories import current_run, task_data
from tests.live import LiveWorker, live_stack, wait_until  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


def ago(seconds):
    return timezone.now() - timezone.timedelta(seconds=seconds)


def all_up(settings, age=1):
    services.heartbeat(name="portal@a", queues=[settings.CELERY_TASK_DEFAULT_QUEUE], now=ago(age))
    services.heartbeat(name="evaluations@a", queues=[settings.EVALUATIONS_QUEUE], now=ago(age))
    services.heartbeat(name="beat@a", kind="beat", now=ago(age))


def test_a_role_is_up_while_one_of_its_processes_beat_within_the_stale_time(settings):
    settings.HEALTH_STALE_SECONDS = 30
    assert {c.role for c in platform_health().unwell} == {DEPLOY_WORKER, BEAT}  # nothing ever seen
    all_up(settings)
    assert platform_health().unwell == ()
    services.heartbeat(name="portal@a", queues=[settings.CELERY_TASK_DEFAULT_QUEUE], now=ago(31))
    health = platform_health()
    assert [c.role for c in health.unwell] == [DEPLOY_WORKER]
    assert health[DEPLOY_WORKER].last_seen < ago(30) and health[EVALUATIONS_WORKER].up
    # A second deploy worker that is alive keeps the role up; a worker of other queues does not count.
    services.heartbeat(name="other@b", queues=["somewhere-else"])
    assert [c.role for c in platform_health().unwell] == [DEPLOY_WORKER]
    services.heartbeat(name="portal@b", queues=[settings.CELERY_TASK_DEFAULT_QUEUE, settings.EVALUATIONS_QUEUE])
    assert platform_health().unwell == ()
    services.heartbeat(name="beat@a", kind="beat", now=ago(60))
    assert [c.role for c in platform_health().unwell] == [BEAT]


def test_healthz_is_alive_without_reading_anything_and_readyz_needs_a_deploy_worker(client, settings, django_assert_num_queries):
    with django_assert_num_queries(0):
        live = client.get("/healthz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})

    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503 and not_ready["Content-Type"] == "application/json"
    body = not_ready.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"ok": True} and body["checks"]["broker"] == {"ok": True}
    assert body["checks"][DEPLOY_WORKER] == {"ok": False}

    all_up(settings)
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


def test_readyz_says_a_broker_that_does_not_answer_without_its_address(client, settings, monkeypatch):
    from celery import current_app

    all_up(settings)
    # Producers' connections go to a port nothing listens on (the app's own settings are left as they are: a
    # later test points the app at its live broker and must not find a write URL left behind).
    unreachable = functools.partial(current_app.connection_for_write, "redis://127.0.0.1:1/0")
    monkeypatch.setattr(current_app, "connection_for_write", unreachable)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["broker"] == {"ok": False}
    assert "127.0.0.1" not in answer.content.decode()


def test_the_api_says_the_same_facts_and_shows_each_process_to_managers_only(world, manager, settings):
    services.heartbeat(name="portal@a", queues=[settings.CELERY_TASK_DEFAULT_QUEUE], now=ago(120))
    services.heartbeat(name="beat@a", kind="beat")
    assert api_client().get("/api/v1/health/").status_code == 401

    member = api_client(world.member).get("/api/v1/health/")
    assert member.status_code == 200
    body = member.json()
    assert body["ready"] is False and body["unwell"] == [DEPLOY_WORKER]
    assert body["checks"][DEPLOY_WORKER]["ok"] is False and body["checks"][BEAT]["ok"] is True
    assert "processes" not in body

    processes = api_client(manager).get("/api/v1/health/").json()["processes"]
    assert {(p["role"], p["name"], p["fresh"]) for p in processes} == {(DEPLOY_WORKER, "portal@a", False), (BEAT, "beat@a", True)}


def test_everyone_sees_the_banner_while_no_deploy_worker_is_seen_and_managers_see_which_since_when(
    member_client, manager_client, settings,
):
    all_up(settings)
    assertNotContains(member_client.get(reverse("portal:task-list")), "health-banner")

    services.heartbeat(name="portal@a", queues=[settings.CELERY_TASK_DEFAULT_QUEUE], now=ago(45))
    member = member_client.get(reverse("portal:task-list"))
    assertContains(member, "The platform is not working normally.")
    assertContains(member, 'data-unwell="deploy_worker"')
    assertNotContains(member, "portal@a")
    manager = manager_client.get(reverse("portal:task-list"))
    assertContains(manager, 'data-role="deploy_worker"')
    assertContains(manager, "<code>portal@a</code>")
    seen = timezone.localtime(WorkerHeartbeat.objects.get(worker="portal@a").seen_at).strftime("%Y-%m-%d %H:%M:%S")
    assertContains(manager, f"not seen since {seen}")

    # The banner is a live region: its poll answers 204 while nothing changed, and the page without it once back.
    poll = member_client.get(reverse("portal:health-banner"))
    digest = poll.content.decode().split('"v": "')[1].split('"')[0]
    assert member_client.get(reverse("portal:health-banner"), {"v": digest}).status_code == 204
    services.heartbeat(name="portal@a", queues=[settings.CELERY_TASK_DEFAULT_QUEUE])
    back = member_client.get(reverse("portal:health-banner"), {"v": digest})
    assert back.status_code == 200 and "health-banner" not in back.content.decode()


def test_the_banner_speaks_chinese_by_default(client, world, settings):
    from tests.factories import PASSWORD

    assert client.login(username=world.member.username, password=PASSWORD)
    assertContains(client.get(reverse("portal:task-list")), "平台运行不正常")


def test_a_deploying_task_whose_deploy_no_worker_took_says_it_waits_for_one(member_client, world):
    from tasks.services import task_create

    task = task_create(user=world.member, data=task_data(world))
    type(task).objects.filter(pk=task.pk).update(status=Status.DEPLOYING)
    task.refresh_from_db()
    instance = TaskInstance.objects.create(
        task=task, run=current_run(task), index=0, node=world.nodes[0], node_name=world.nodes[0].name,
        gpu_type="NVIDIA-H100", sku_count=2, gpu_count=2, status=InstanceStatus.PENDING,
    )
    page = reverse("portal:task-detail", args=[task.pk])
    assertContains(member_client.get(page), 'data-waiting="worker"')
    TaskInstance.objects.filter(pk=instance.pk).update(handle="4242")  # a worker applied it
    assertNotContains(member_client.get(page), 'data-waiting="worker"')


@pytest.mark.integration
@pytest.mark.timeout(90)
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_and_its_embedded_beat_write_their_own_heartbeats_and_age_once_killed(live_stack, settings):
    live_stack.env["HEARTBEAT_INTERVAL_SECONDS"] = "1"
    settings.CELERY_TASK_DEFAULT_QUEUE = live_stack.queue
    settings.EVALUATIONS_QUEUE = live_stack.evaluations_queue
    settings.HEALTH_STALE_SECONDS = 3
    worker = LiveWorker(live_stack).start()
    try:
        wait_until(lambda: platform_health().unwell == () and platform_health()[EVALUATIONS_WORKER].up, 30,
                   message=worker.log)
        row = WorkerHeartbeat.objects.get(worker__startswith=live_stack.queue)
        assert set(row.queues.split(",")) == {live_stack.queue, live_stack.evaluations_queue}
        first = row.seen_at
        wait_until(lambda: WorkerHeartbeat.objects.get(pk=row.pk).seen_at > first, 5)  # it keeps beating
    finally:
        worker.kill()
    wait_until(lambda: {c.role for c in platform_health().unwell} == {DEPLOY_WORKER, BEAT}, 10)


def test_the_platform_health_command_exits_1_while_a_required_role_is_down(settings, capsys):
    import json

    from django.core.management import call_command

    services.heartbeat(name="beat@a", kind="beat", now=ago(120))
    with pytest.raises(SystemExit) as exited:
        call_command("platform_health", "--require", "beat")
    assert exited.value.code == 1
    seen = WorkerHeartbeat.objects.get().seen_at.isoformat()
    assert json.loads(capsys.readouterr().out)["beat"] == {"ok": False, "last_seen": seen, "processes": ["beat@a"]}
    services.heartbeat(name="beat@a", kind="beat")
    call_command("platform_health", "--require", "beat")  # returns: healthy
    assert json.loads(capsys.readouterr().out)["beat"]["ok"] is True
