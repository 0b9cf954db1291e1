"""Each page of the portal through the test client: what it shows, to whom, and its live regions."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape
from pytest_django.asserts import assertContains, assertNotContains

from deploy_portal.messages import N_, Sentence
from scheduler.selectors import queue_info_for
from tasks.models import InstanceStatus, TaskInstance
from tasks.services import task_create
from tasks.states import Status
from tests.factories import (
    current_run,
    PASSWORD,
    ProjectFactory,
    TaskFactory,
    UserFactory,
    task_data,
)

LIST = reverse("portal:task-list")


def _task(world, **fields):
    task = task_create(user=world.member, data=task_data(world, name=fields.pop("name", "qwen-7b")))
    if fields:
        type(task).objects.filter(pk=task.pk).update(**fields)
        task.refresh_from_db()
    return task


def _instance(task, node, **fields):
    defaults = {"index": 0, "node": node, "node_name": node.name, "gpu_type": "NVIDIA-H100", "sku_count": 2, "gpu_count": 2}
    return TaskInstance.objects.create(task=task, run=current_run(task), **{**defaults, **fields})


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_the_login_page(client):
    response = client.get(LIST)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    # A poll from a page whose session ended moves the whole page to the login form.
    response = client.get(reverse("portal:queue"), headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == reverse("login")


@pytest.mark.django_db
def test_login_leads_to_the_task_list(client, world):
    assertContains(client.get(reverse("login")), 'name="password"')
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response["Location"] == LIST


@pytest.mark.django_db
def test_the_list_shows_badges_and_only_the_operations_the_state_allows(member_client, world):
    idle = _task(world, name="idle")
    running = _task(world, name="serving", status=Status.RUNNING, endpoint_port=31555)
    response = member_client.get(LIST)
    html = response.content.decode()
    assertContains(response, 'class="badge badge-not_deployed"')
    assertContains(response, 'class="badge badge-running"')
    row = lambda task: html.split(f'data-task="{task.pk}"')[1].split("</tr>")[0]
    assert 'data-action="start"' in row(idle) and 'data-action="stop"' not in row(idle)
    assert 'data-action="stop"' in row(running) and 'data-action="start"' not in row(running)
    assert 'data-action="evaluate"' in row(running)
    assert "http://127.0.0.1:31555" in row(running) and "http://" not in row(idle)
    for task in (idle, running):
        assert 'data-action="pin"' not in row(task) and 'data-action="force_start"' not in row(task)


@pytest.mark.django_db
def test_the_list_filters_and_shows_a_queued_tasks_position(member_client, world):
    from django.utils import timezone

    _task(world, name="idle")
    _task(world, name="waiting", status=Status.QUEUED, queued_at=timezone.now())
    response = member_client.get(LIST, {"status": "queued"})
    assertContains(response, "waiting")
    assertNotContains(response, ">idle<")
    assertContains(response, "No. 1 in queue")


@pytest.mark.django_db
def test_a_second_user_sees_none_of_the_first_projects_tasks(world):
    task = _task(world, name="alices-secret-model")
    stranger = UserFactory(username="bob")
    ProjectFactory(name="bobs", members=[stranger])
    client = Client()
    client.cookies["django_language"] = "en"
    client.login(username="bob", password=PASSWORD)
    assertNotContains(client.get(LIST), "alices-secret-model")
    for name in ("portal:task-detail", "portal:task-instances", "portal:task-copy", "portal:task-live"):
        assert client.get(reverse(name, args=[task.pk])).status_code == 404
    assert client.post(reverse("portal:task-operation", args=[task.pk, "start"])).status_code == 404
    instance = _instance(task, world.nodes[0])
    assert client.get(reverse("portal:instance-log", args=[instance.pk])).status_code == 404
    assertNotContains(client.get(reverse("portal:queue")), "h100")


@pytest.mark.django_db
def test_the_list_query_count_does_not_grow_with_the_tasks(member_client, world):
    from django.utils import timezone

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert member_client.get(LIST).status_code == 200
        return len(captured.captured_queries)

    def add(count, offset):
        for i in range(offset, offset + count):
            _task(world, name=f"t{i}", **({"status": Status.QUEUED, "queued_at": timezone.now()} if i % 2 else {}))

    add(2, 0)
    few = queries()
    add(13, 2)
    # 16, the reader's projects read twice for the queue's privacy (the reasons, the sidebar), the heartbeats.
    assert queries() == few <= 19


@pytest.mark.django_db
def test_the_details_tab_shows_configuration_timeline_and_no_endpoint_until_running(member_client, world):
    task = _task(world)
    url = reverse("portal:task-detail", args=[task.pk])
    response = member_client.get(url)
    assertContains(response, task.image)
    assertContains(response, "SHM_SIZE=60G")
    assertContains(response, "/models")
    assertContains(response, "Task created.")
    assertContains(response, "The API endpoint is available only while the task is running.")
    type(task).objects.filter(pk=task.pk).update(status=Status.RUNNING, endpoint_port=31555)
    response = member_client.get(url)
    assertContains(response, 'href="http://127.0.0.1:31555"')
    assertContains(response, 'data-copy="http://127.0.0.1:31555"')


@pytest.mark.django_db
def test_a_queued_task_shows_its_position_and_why_it_waits(member_client, world):
    from django.utils import timezone

    big = _task(world, name="big")
    type(big).objects.filter(pk=big.pk).update(status=Status.RUNNING)
    for node in world.nodes:
        _instance(big, node, index=world.nodes.index(node), sku_count=8, gpu_count=8)
    task = _task(world, name="waiting", status=Status.QUEUED, queued_at=timezone.now())
    response = member_client.get(reverse("portal:task-detail", args=[task.pk]))
    position, reason = queue_info_for([task])[task.pk]
    assert position == 1 and reason
    assertContains(response, 'Queue position</span> <strong>1</strong>')
    assertContains(response, f'<p class="reason">{escape(reason)}</p>')


@pytest.mark.django_db
def test_live_regions_answer_204_while_nothing_changed(member_client, world):
    task = _task(world)
    url = reverse("portal:task-live", args=[task.pk])
    first = member_client.get(url, headers={"HX-Request": "true"})
    assert first.status_code == 200
    digest = first.content.decode().split('{"v": "')[1].split('"')[0]
    assert member_client.get(url, {"v": digest}, headers={"HX-Request": "true"}).status_code == 204
    type(task).objects.filter(pk=task.pk).update(status=Status.RUNNING, endpoint_port=31555)
    changed = member_client.get(url, {"v": digest}, headers={"HX-Request": "true"})
    assert changed.status_code == 200
    assertContains(changed, "badge-running")


@pytest.mark.django_db
def test_the_queue_status_sidebar_is_on_every_page_and_refreshes_itself(member_client, world):
    response = member_client.get(LIST)
    assertContains(response, 'id="queue-status"')
    assertContains(response, "hx-trigger=\"every 3s [document.visibilityState === 'visible']\"")
    assertContains(response, 'data-fact="free-gpus">16 / 16</dd>', html=False)
    task = _task(world, name="serving", status=Status.RUNNING)
    _instance(task, world.nodes[0], sku_count=4, gpu_count=4)
    assertContains(member_client.get(reverse("portal:queue")), 'data-fact="free-gpus">12 / 16</dd>')


@pytest.mark.django_db
def test_the_instances_tab_lists_instances_with_their_logs(member_client, world):
    task = _task(world, status=Status.STOPPED)
    instance = _instance(
        task, world.nodes[1], status=InstanceStatus.TERMINATED, restarts=2,
        log_archived=True, log_archive="line 1\nline 2\n<script>alert(1)</script>\n",
    )
    response = member_client.get(reverse("portal:task-instances", args=[task.pk]))
    assertContains(response, "gpu-01")
    assertContains(response, "NVIDIA-H100")
    assertContains(response, f'data-log="{instance.pk}"')
    assertContains(response, 'hx-trigger="load"')  # a stopped task's log does not follow
    log = member_client.get(reverse("portal:instance-log", args=[instance.pk]), {"tail": "2"})
    assert log["Content-Type"].startswith("text/plain")
    assert log.content.decode() == "line 2\n<script>alert(1)</script>\n"
    download = member_client.get(reverse("portal:instance-log-download", args=[instance.pk]))
    assert download["Content-Disposition"] == f'attachment; filename="{task.name}-{task.pk}-0.log"'
    assert download.streaming and b"".join(download.streaming_content).decode().startswith("line 1\n")


@pytest.mark.django_db
@pytest.mark.parametrize("name,header", [
    ("千问 72B", "attachment; filename*=utf-8''%E5%8D%83%E9%97%AE-72b-{pk}-0.log"),
    ('say "hi"', 'attachment; filename="say-hi-{pk}-0.log"'),
    ("a\nb", 'attachment; filename="a-b-{pk}-0.log"'),
])
def test_a_log_download_is_named_safely_whatever_the_task_name(member_client, world, name, header):
    task = _task(world, status=Status.STOPPED)
    type(task).objects.filter(pk=task.pk).update(name=name)
    instance = _instance(task, world.nodes[0], status=InstanceStatus.TERMINATED, log_archived=True, log_archive="x\n")
    download = member_client.get(reverse("portal:instance-log-download", args=[instance.pk]))
    assert download.status_code == 200
    assert download["Content-Disposition"] == header.format(pk=task.pk)


@pytest.mark.django_db
def test_a_running_tasks_logs_follow(member_client, world):
    task = _task(world, status=Status.RUNNING)
    _instance(task, world.nodes[0])
    assertContains(member_client.get(reverse("portal:task-instances", args=[task.pk])), 'hx-trigger="load, every 2s')


@pytest.mark.django_db
def test_the_vc_info_shows_the_bundle_free_gpus_and_a_shm_size(member_client, world):
    response = member_client.get(reverse("portal:vc-info"), {"virtual_cluster": world.vc.pk, "sku_count": "2"})
    assertContains(response, "1 GPU + 12 CPU cores + 120 GiB memory")
    assertContains(response, "16 / 16")
    assertContains(response, 'data-use-shm="120G"')
    warning = member_client.get(reverse("portal:vc-info"), {"virtual_cluster": world.vc.pk, "sku_count": "8", "replicas": "3"})
    assertContains(warning, 'role="alert"')
    other = TaskFactory().virtual_cluster
    assert member_client.get(reverse("portal:vc-info"), {"virtual_cluster": other.pk}).content == b""


@pytest.mark.django_db
def test_pages_speak_chinese_by_default_and_english_on_request(client, world):
    client.login(username="alice", password=PASSWORD)
    assertContains(client.get(LIST), "任务列表")
    client.post(reverse("set_language"), {"language": "en", "next": LIST})
    assertContains(client.get(LIST), "Task list")


@pytest.mark.django_db
def test_the_instances_region_changes_with_the_instances(member_client, world):
    task = _task(world, status=Status.DEPLOYING)
    instance = _instance(task, world.nodes[0], status=InstanceStatus.STARTING)
    url = reverse("portal:task-instances-live", args=[task.pk])
    first = member_client.get(url, headers={"HX-Request": "true"})
    digest = first.content.decode().split('{"v": "')[1].split('"')[0]
    assert member_client.get(url, {"v": digest}).status_code == 204
    TaskInstance.objects.filter(pk=instance.pk).update(status=InstanceStatus.READY, restarts=1)
    changed = member_client.get(url, {"v": digest})
    assertContains(changed, "instance-ready")
    assertContains(changed, "<td>1</td>")


@pytest.mark.django_db
def test_the_command_is_shown_shell_quoted(member_client, world, anyone_sets_commands):
    task = task_create(user=world.member, data=task_data(
        world, command=["python3", "-c", "import sys,time; print(1)"], args=["--name", "two words"],
    ))
    response = member_client.get(reverse("portal:task-detail", args=[task.pk]))
    assertContains(response, escape("python3 -c 'import sys,time; print(1)'"))
    assertContains(response, escape("--name 'two words'"))


@pytest.mark.django_db
def test_the_local_runtime_says_it_ignores_the_container_port_and_runs_the_demo_model(member_client, world, settings):
    settings.DEPLOY_RUNTIME = "local"
    task = _task(world)
    detail = member_client.get(reverse("portal:task-detail", args=[task.pk]))
    assertContains(detail, 'data-note="local-port"')
    assertContains(detail, "the demo model (python -m demo_model)")
    form = member_client.get(reverse("portal:task-create"))
    assertContains(form, 'data-note="local-port"')
    assertContains(form, 'data-note="local-command"')
    settings.DEPLOY_RUNTIME = "kubernetes"
    detail = member_client.get(reverse("portal:task-detail", args=[task.pk]))
    assertNotContains(detail, "data-note=")
    assertContains(detail, "the image's entrypoint")


@pytest.mark.django_db
def test_the_details_tab_shows_each_instances_deploy_progress(member_client, world):
    task = _task(world, status=Status.DEPLOYING)
    _instance(task, world.nodes[0], status=InstanceStatus.STARTING,
              message=Sentence(N_("Waiting for the process to listen on port %(port)s."), port=31404))
    _instance(task, world.nodes[1], index=1, status=InstanceStatus.READY)
    response = member_client.get(reverse("portal:task-detail", args=[task.pk]))
    assertContains(response, "Deploy progress")
    assertContains(response, "Waiting for the process to listen on port 31404.")
    assertContains(response, "qwen-7b-1")
    assertContains(response, 'class="instance-status instance-ready"')


@pytest.mark.django_db
def test_a_running_task_shows_the_model_ids_its_endpoint_lists_with_examples_that_work(member_client, world):
    import openai

    from tests.demo_model.process import DemoModelProcess

    with DemoModelProcess("--model", "qwen2.5-7b") as server:
        port = int(server.url.rsplit(":", 1)[1])
        world.vc.endpoint_host = "127.0.0.1"
        world.vc.save()
        task = _task(world, status=Status.RUNNING, endpoint_port=port)
        detail = member_client.get(reverse("portal:task-detail", args=[task.pk]))
        assertContains(detail, reverse("portal:task-models", args=[task.pk]))
        response = member_client.get(reverse("portal:task-models", args=[task.pk]))
        assertContains(response, "<code data-model>qwen2.5-7b</code>", html=False)
        examples = response.context["examples"]
        assert examples["curl"].startswith(f"curl {task.endpoint}/v1/chat/completions")
        scope = {"OpenAI": lambda **kwargs: openai.OpenAI(max_retries=0, **kwargs)}
        exec(examples["python"].replace("from openai import OpenAI\n", ""), scope)  # the example runs as shown
        assert scope["answer"].model == "qwen2.5-7b"
    gone = member_client.get(reverse("portal:task-models", args=[task.pk]))
    assertContains(gone, "The endpoint did not list its models")
