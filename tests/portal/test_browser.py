"""The portal in a real browser against the live stack: live server, a Celery worker on Redis, the local runtime.

Run: ``NODEPORT_RANGE=31400-31799 LIVE_REDIS_URL=redis://127.0.0.1:6379/2 python -m pytest -m browser tests/portal``.
"""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from scheduler.runtimes.local.isolation import demo_python
from scheduler.services import task_start
from tasks.models import Task
from tasks.secrets import env_open
from tasks.services import task_create
from tasks.states import Status
from tests.factories import (
    ManagerFactory,
    ProjectFactory,
    UserFactory,
    make_world,
    task_data,
)
from tests.live import free_port, wait_until

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("anyone_sets_commands")]

DEMO_MODEL = f"{demo_python()} -m demo_model"
RUNNING_TIMEOUT = 60_000


def _badge(page):
    return page.locator("#task-live .status-line .badge")


def test_a_developer_creates_starts_watches_reads_copies_and_stops(browser_context, live_worker):
    world = make_world()
    page = log_in(browser_context(), world.member.username)
    expect(page.locator("#queue-status [data-fact=free-gpus]")).to_have_text("16 / 16")

    # Create: a bad input first; its message stands next to the field and nothing is saved.
    page.click("nav >> text=Create task")
    page.fill("#id_name", "qwen-demo")
    page.select_option("#id_project", str(world.project.pk))
    page.fill("#id_image", "docker.io/library/nginx:1")
    page.select_option("#id_virtual_cluster", str(world.vc.pk))
    expect(page.locator("#vc-info")).to_contain_text("1 GPU + 12 CPU cores + 120 GiB memory")
    # The suggested SHM_SIZE follows the SKU count until the user types one.
    shm_size = page.locator("input[name='env-0-value']")
    expect(shm_size).to_have_value("60G")
    page.fill("#id_sku_count", "2")
    expect(page.locator("#vc-info")).to_contain_text("2 GPU, 24 CPU cores, 240 GiB memory")
    expect(shm_size).to_have_value("120G")
    shm_size.fill("100G")
    page.fill("#id_sku_count", "3")
    expect(page.locator("#vc-info")).to_contain_text("3 GPU, 36 CPU cores, 360 GiB memory")
    expect(shm_size).to_have_value("100G")
    page.locator("[data-use-shm]").click()
    expect(shm_size).to_have_value("180G")
    page.fill("#id_command", DEMO_MODEL)
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("#image-errors")).to_contain_text("Images must come from an allowed registry")
    assert not Task.objects.exists()

    # The port fields follow the check box; env rows come and go.
    page.uncheck("#id_expose_port")
    expect(page.locator("#port-fields")).to_be_hidden()
    page.check("#id_expose_port")
    expect(page.locator("#id_container_port")).to_be_visible()
    page.click("[data-add-row]")
    expect(page.locator(".env-row")).to_have_count(2)
    page.locator(".env-row").nth(1).locator("[data-remove-row]").click()
    expect(page.locator(".env-row")).to_have_count(1)
    # A secret is typed unseen once its box is ticked, and shown as •••• once saved.
    page.click("[data-add-row]")
    secret_row = page.locator(".env-row").nth(1)
    secret_row.locator("input[name$='-name']").fill("HF_TOKEN")
    secret_row.locator("[data-secret-toggle]").check()
    expect(secret_row.locator("input[name$='-value']")).to_have_attribute("type", "password")
    secret_row.locator("input[name$='-value']").fill("hf_from_the_browser")

    page.fill("#id_image", "registry.example.com/llm/demo:1")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(_badge(page)).to_have_attribute("data-status", "not_deployed")
    task = Task.objects.get(name="qwen-demo")
    expect(page.locator("[data-secret=HF_TOKEN]")).to_be_visible()
    assert "hf_from_the_browser" not in page.content()
    assert ("HF_TOKEN", "hf_from_the_browser", True) in env_open(task.env)

    # A second window on the list: its rows and the queue status follow by themselves.
    watcher = log_in(browser_context(), world.member.username)
    watcher.evaluate("window.notReloaded = true")

    # Start, then watch it become running without reloading the page.
    page.locator("#task-live [data-action=start]").click()
    expect(page.locator(".message-success")).to_contain_text("started")
    page.evaluate("window.notReloaded = true")
    expect(_badge(page)).to_have_attribute("data-status", "running", timeout=RUNNING_TIMEOUT)
    assert page.evaluate("window.notReloaded") is True
    expect(watcher.locator("#queue-status [data-fact=free-gpus]")).to_have_text("13 / 16", timeout=5_000)
    expect(watcher.locator(f"tr[data-task='{task.pk}'] [data-status]")).to_have_attribute("data-status", "running")
    assert watcher.evaluate("window.notReloaded") is True

    # Open the endpoint, and copy it.
    endpoint = page.locator("#endpoint-url").get_attribute("href")
    task.refresh_from_db()
    assert endpoint == task.endpoint
    api = browser_context().new_page()
    api.goto(f"{endpoint}/v1/models")
    expect(api.locator("body")).to_contain_text("demo-llm")
    page.locator(".endpoint [data-copy]").click()
    expect(page.locator(".endpoint [data-copy]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == endpoint
    # The model to send is read from the endpoint, with a request to copy.
    expect(page.locator("#models [data-model]")).to_have_text("demo-llm")
    page.locator("#models summary").click()
    page.locator("#models [data-example=curl] + [data-copy]").click()
    assert page.evaluate("navigator.clipboard.readText()").startswith(f"curl {endpoint}/v1/chat/completions")

    # The instances tab: where it runs, and its log, which follows.
    page.click("text=Instance details")
    row = page.locator("table.instances tbody tr").first
    expect(row).to_contain_text(world.nodes[0].name)
    expect(row).to_contain_text("NVIDIA-H100")
    log = page.locator(".log-view").first
    expect(log).to_contain_text("serving demo-llm on http://127.0.0.1:")
    api.goto(f"{endpoint}/v1/models")
    expect(log).to_contain_text("GET /v1/models")
    with page.expect_download() as download:
        page.locator(".log-head a[download]").first.click()
    assert "serving demo-llm" in Path(download.value.path()).read_text(encoding="utf-8")

    # Copy: the same form, filled, with task type and project locked.
    page.click("text=Task details")
    page.locator("#task-live [data-action=copy]").click()
    expect(page.locator("#id_project")).to_be_disabled()
    expect(page.locator("#id_task_type")).to_be_disabled()
    expect(page.locator("#id_image")).to_have_value("registry.example.com/llm/demo:1")
    expect(page.locator("input[type=password][name$='-value']")).to_have_attribute(
        "placeholder", "Saved: leave blank to keep it"
    )
    page.fill("#id_name", "qwen-demo-copy")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(_badge(page)).to_have_attribute("data-status", "not_deployed")
    copy = Task.objects.get(name="qwen-demo-copy")
    assert copy.project == world.project
    assert ("HF_TOKEN", "hf_from_the_browser", True) in env_open(copy.env)  # left blank: kept

    # Stop, after confirming.
    page.goto(f"/tasks/{task.pk}/")
    page.locator("#task-live [data-action=stop]").click()
    dialog = page.locator("#modal")
    expect(dialog).to_be_visible()
    dialog.locator("button[type=submit]").click()
    expect(page.locator(".message-success")).to_contain_text("stopped")
    expect(_badge(page)).to_have_attribute("data-status", "stopped")
    wait_until(lambda: not task.instances.filter(log_archived=False).exists(), timeout=30)
    page.click("text=Instance details")
    expect(page.locator(".log-view").first).to_contain_text("serving demo-llm")


def test_a_manager_pins_and_force_starts_and_a_stranger_sees_nothing(browser_context, live_worker):
    world = make_world(nodes=1, sku_capacity=2)  # one machine, room for one task
    manager = ManagerFactory(username="lixiao")
    config = {"command": DEMO_MODEL.split(), "sku_count": 2, "env": [], "mounts": []}
    holder = task_create(user=world.member, data=task_data(world, name="holder", **config))
    task_start(task=holder, user=world.member)
    wait_until(lambda: Task.objects.get(pk=holder.pk).status == Status.RUNNING, timeout=60)
    # A port of its own: the victim's process may still hold its port while it is torn down.
    urgent = task_create(user=world.member, data=task_data(world, name="urgent", external_port=free_port(), **config))
    assert task_start(task=urgent, user=world.member).status == Status.QUEUED

    page = log_in(browser_context(), manager.username)
    sidebar = page.locator("#queue-status")
    expect(sidebar).to_contain_text("h100")
    expect(sidebar.locator("[data-fact=queued]")).to_have_text("1")
    page.goto(f"/tasks/{urgent.pk}/")
    expect(page.locator(".queue-info")).to_contain_text("1")
    expect(page.locator("#task-live [data-action=force_start]")).to_have_count(0)
    page.locator("#task-live [data-action=pin]").click()
    expect(page.locator("#task-live .pin")).to_be_visible()
    expect(sidebar).to_contain_text("urgent")

    page.locator("#task-live [data-action=force_start]").click()
    dialog = page.locator("#modal")
    expect(dialog.locator(f"[data-victim='{holder.pk}']")).to_contain_text("holder")
    dialog.locator("button[type=submit]").click()
    expect(page.locator(".message-success")).to_contain_text("force-started")
    expect(_badge(page)).to_have_attribute("data-status", "running", timeout=RUNNING_TIMEOUT)
    assert Task.objects.get(pk=holder.pk).status == Status.KILLED
    page.goto(f"/tasks/{holder.pk}/")
    killed = page.locator(".timeline li").last
    expect(killed).to_contain_text("urgent")
    expect(killed).to_contain_text("lixiao")

    # Another developer, of another project, sees none of these tasks.
    stranger = UserFactory(username="bob")
    ProjectFactory(name="vision", members=[stranger])
    other = log_in(browser_context(), stranger.username)
    expect(other.locator("table.tasks tbody")).to_contain_text("No tasks yet.")
    expect(other.locator("table.tasks")).not_to_contain_text("urgent")
    response = other.goto(f"/tasks/{urgent.pk}/")
    assert response.status == 404
