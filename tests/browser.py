"""The browser for every test that needs one: ONE Playwright (sync API) and Chromium per test session.

Registered from ``tests/conftest.py`` as a plugin, so every package shares the same session fixture
(two sync Playwright instances cannot live in one process). Debian's Chromium, never a downloaded one.
"""

import os
from pathlib import Path

import pytest

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


def log_in(context, username, password=None):
    from tests.factories import PASSWORD

    password = password or PASSWORD
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    return page
