"""The admin in a real browser, in Chinese: the selector widget speaks it too."""

import pytest
from playwright.sync_api import expect

from tests.browser import log_in
from tests.factories import ManagerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_selector_widget_is_in_chinese(browser_context):
    manager = ManagerFactory(username="lixiao", is_staff=True)
    page = log_in(browser_context("zh-hans"), manager.username)
    page.goto("/admin/clusters/virtualcluster/add/")
    chooser = page.locator("#id_users_selector_chooseall, .selector-chooseall").first
    expect(chooser).to_be_visible()
    texts = " ".join(page.locator(".selector").first.all_inner_texts())
    assert "Choose" not in texts and "Remove all" not in texts, texts
