"""Screenshots of the main pages at 1440×900 in both languages.

``SCREENSHOT_DIR=docs/screenshots python -m pytest -m browser tests/portal/test_screenshots.py`` refreshes the
committed ones; without it they go to test-output/screenshots.
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import log_in
from .showcase import build

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("anyone_sets_commands")]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_screenshots_of_the_main_pages(browser_context, language):
    target = Path(os.environ.get("SCREENSHOT_DIR", REPO / "test-output" / "screenshots"))
    target.mkdir(parents=True, exist_ok=True)
    showcase = build()
    page = log_in(browser_context(language), showcase.member.username)
    suffix = "zh" if language == "zh-hans" else "en"

    def shot(name, locator=None):
        path = target / f"{name}-{suffix}.png"
        (locator or page).screenshot(path=path)
        assert path.stat().st_size < 400_000

    expect(page.locator("table.tasks [data-status]")).to_have_count(8)
    expect(page.locator("html")).to_have_attribute("lang", language)
    shot("task-list")

    page.goto("/tasks/new/")
    page.select_option("#id_project", str(showcase.serving.project_id))
    page.select_option("#id_virtual_cluster", str(showcase.vcs[0].pk))
    page.fill("#id_sku_count", "4")
    expect(page.locator("#vc-info [data-use-shm]")).to_have_attribute("data-use-shm", "240G")
    page.fill("#id_name", "qwen2-72b-int4")
    page.fill("#id_image", "192.168.99.199:8080/aitc/vllm:0.6.0")
    shot("create-form")

    page.goto(f"/tasks/{showcase.serving.pk}/")
    expect(page.locator("#endpoint-url")).to_be_visible()
    shot("task-details")

    page.goto(f"/tasks/{showcase.serving.pk}/instances/")
    expect(page.locator(".log-view").first).to_contain_text("Uvicorn running")
    shot("instances-logs")

    sidebar, queue = page.locator("aside.sidebar").bounding_box(), page.locator("section.queue").bounding_box()
    path = target / f"queue-sidebar-{suffix}.png"
    page.screenshot(path=path, clip={"x": 0, "y": 0, "width": sidebar["width"], "height": queue["y"] + queue["height"] + 16})

    deploying = showcase.deploying
    page.goto(f"/tasks/{deploying.pk}/")
    expect(page.locator(".deploy-progress")).to_contain_text(deploying.name)
    shot("deploy-progress")

    manager = log_in(browser_context(language), showcase.manager.username)
    manager.goto("/queues/")
    expect(manager.locator(f"[data-task='{showcase.queued[1].pk}'] [data-estimate]")).not_to_be_empty()
    path = target / f"queue-page-{suffix}.png"
    manager.screenshot(path=path)
    assert path.stat().st_size < 400_000
