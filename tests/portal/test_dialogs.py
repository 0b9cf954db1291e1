"""The confirmation dialogs in a real browser: one dialog after another on the same page, both languages.

The buttons stand inside live regions (``hx-swap="outerHTML"``); a dialog's request must not inherit their
swap, or the first dialog replaces ``#modal-body`` and every later one has nowhere to go.
"""

import pytest
from playwright.sync_api import expect

from tasks.models import Task
from tasks.services import task_create
from tasks.states import Status
from tests.factories import ManagerFactory, make_world, task_data

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _open_and_cancel(page, scope, action):
    """Open ``action``'s dialog from ``scope``, check it shows, cancel it, check it is gone."""
    page.locator(f"{scope} [data-action={action}]").first.click()
    dialog = page.locator("#modal")
    expect(dialog).to_be_visible()
    expect(dialog.locator(f"form[data-confirm={action}]")).to_be_visible()
    dialog.locator("[data-close-modal]").click()
    expect(dialog).to_be_hidden()


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_dialogs_open_again_after_one_is_cancelled_on_the_detail_and_list_pages(browser_context, language):
    world = make_world()
    manager = ManagerFactory(username="lixiao")
    queued = task_create(user=world.member, data=task_data(world, name="urgent"))
    Task.objects.filter(pk=queued.pk).update(status=Status.QUEUED, pinned=True)
    idle = task_create(user=world.member, data=task_data(world, name="idle"))

    errors = []
    page = log_in(browser_context(language), manager.username)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    page.goto(f"/tasks/{queued.pk}/")
    for action in ("stop", "force_start", "stop", "force_start"):
        _open_and_cancel(page, "#task-live", action)

    page.goto(f"/tasks/{idle.pk}/")
    for action in ("delete", "delete"):
        _open_and_cancel(page, "#task-live", action)

    page.goto("/")
    for action in ("delete", "stop", "force_start", "delete"):
        _open_and_cancel(page, "table.tasks", action)
    assert not [error for error in errors if "targetError" in error]
