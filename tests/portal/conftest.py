"""Fixtures of the portal's tests: a logged-in client, the create form's POST data, and a browser."""

import os
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import PASSWORD
from tests.live import live_stack, live_worker  # noqa: F401 - the live stack's fixtures, for the browser tests


@pytest.fixture
def member_client(client, world):
    """The world's member, logged in, reading the portal in English (messages are asserted in words)."""
    client.cookies["django_language"] = "en"
    assert client.login(username=world.member.username, password=PASSWORD)
    return client


@pytest.fixture
def manager_client(world, manager):
    """A manager (the managers group: pin, force start, see everything), in a client of their own."""
    client = Client()
    client.cookies["django_language"] = "en"
    assert client.login(username=manager.username, password=PASSWORD)
    return client


def form_data(world, **overrides):
    """What the create form posts for a valid task in ``world``; ``None`` drops a key."""
    data = {
        "name": "qwen-7b",
        "project": str(world.project.pk),
        "task_type": "inference",
        "image": "registry.example.com/llm/vllm:0.6.0",
        "virtual_cluster": str(world.vc.pk),
        "sku_count": "2",
        "replicas": "1",
        "expose_port": "on",
        "container_port": "8000",
        "external_port": "",
        "description": "",
        "env-0-name": "SHM_SIZE",
        "env-0-value": "60G",
        f"mounts-{world.storage.pk}": "on",
        f"mounts-{world.storage.pk}-path": "/models",
        "command": "",
        "args": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


# --- the browser -----------------------------------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FAILURE_DIR = Path(__file__).resolve().parents[2] / "test-output" / "portal"

# The live server listens inside the ports this machine lends us, at their top end (task ports start low).
if "NODEPORT_RANGE" in os.environ and "DJANGO_LIVE_TEST_SERVER_ADDRESS" not in os.environ:
    os.environ["DJANGO_LIVE_TEST_SERVER_ADDRESS"] = f"localhost:{os.environ['NODEPORT_RANGE'].split('-')[1]}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import expect, sync_playwright

    # The live parts refresh every few seconds and a shared CI machine can be slow: wait up to 10 s.
    expect.set_options(timeout=10_000)

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_context(chromium, live_server, request):
    """A fresh browser profile (1440×900) on the live server; on failure every open page is saved as a screenshot."""
    contexts = []

    def new_context(language="en"):
        context = chromium.new_context(
            base_url=live_server.url, viewport={"width": 1440, "height": 900}, accept_downloads=True,
            locale="en-US" if language == "en" else "zh-CN",
        )
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        context.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield new_context
    failed = getattr(request.node, "report_call", None) is not None and request.node.report_call.failed
    for number, context in enumerate(contexts):
        if failed:
            FAILURE_DIR.mkdir(parents=True, exist_ok=True)
            for index, page in enumerate(context.pages):
                page.screenshot(path=FAILURE_DIR / f"{request.node.name}-{number}-{index}.png", full_page=True)
        context.close()


def log_in(context, username, password=PASSWORD):
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    return page
