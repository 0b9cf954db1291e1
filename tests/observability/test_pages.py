"""The utilisation and GPU-hours pages: scoped to what the user may see, in both languages, with a CSV export."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_utilisation_page_plots_the_vcs_history(client, history):
    world, secret = history
    client.force_login(world.member)
    page = client.get(f"/virtual-clusters/{world.vc.pk}/utilisation/?range=24h", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert page.context["peak"] == 6 and page.context["average"] == 6
    assert sum(page.context["plot"]["allocated"]) / len(page.context["plot"]["allocated"]) == 6
    assert b"uPlot-1.6.32.iife.min.js" in page.content and b"Allocated vs total GPUs" in page.content
    assert client.get(f"/virtual-clusters/{secret.pk}/utilisation/").status_code == 404
    assert client.get("/utilisation/").url == f"/virtual-clusters/{world.vc.pk}/utilisation/"
    chinese = client.get(f"/virtual-clusters/{world.vc.pk}/utilisation/?range=7d", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "已分配与总 GPU".encode() in chinese.content


def test_gpu_hours_are_those_of_the_users_projects_and_all_for_a_manager(client, history, manager):
    world, _secret = history
    client.force_login(world.member)
    page = client.get("/gpu-hours/")
    assert [(row["name"], round(row["gpu_hours"], 3)) for row in page.context["by_project"]] == [("llm", 2.0)]
    assert [(row["name"], round(row["gpu_hours"], 3)) for row in page.context["by_owner"]] == [("alice", 2.0)]
    client.force_login(manager)
    page = client.get("/gpu-hours/")
    assert [(row["name"], round(row["gpu_hours"], 3)) for row in page.context["by_project"]] == [("vision", 4.0), ("llm", 2.0)]
    assert page.context["total"] == pytest.approx(6.0)


def test_gpu_hours_export_as_csv_for_the_chosen_period(client, history, manager):
    client.force_login(manager)
    today = timezone.localdate()
    response = client.get(
        f"/gpu-hours/?since={today - timedelta(days=1)}&until={today}&format=csv", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["Kind", "Name", "Virtual cluster", "GPU-hours", "From", "To (included)"]
    assert [row[:4] for row in rows[1:]] == [
        ["Project", "vision", "h100", "4.000"], ["Project", "llm", "h100", "2.000"],
        ["User", "bob", "h100", "4.000"], ["User", "alice", "h100", "2.000"],
    ]
    empty = client.get(f"/gpu-hours/?since={today - timedelta(days=40)}&until={today - timedelta(days=35)}&format=csv")
    assert len(list(csv.reader(io.StringIO(empty.content.decode("utf-8-sig"))))) == 1


def test_a_period_that_ends_before_it_starts_is_a_field_error(client, history, manager):
    client.force_login(manager)
    page = client.get("/gpu-hours/?since=2026-03-10&until=2026-03-01", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert page.context["form"].errors == {"until": ["The end of the period is before its start."]}
    assert client.get("/gpu-hours/?since=garbage&until=2026-03-01").status_code == 200


def test_a_user_chooses_per_event_and_adds_a_webhook_of_their_own(client, world):
    from observability.models import NotificationPreference, Webhook

    client.force_login(world.member)
    assert client.get("/notifications/").status_code == 200
    response = client.post("/notifications/", {
        "add_webhook": "1", "name": "team bot", "kind": "feishu", "url": "https://open.feishu.cn/hook/abc", "secret": "x",
    })
    assert response.status_code == 302
    hook = Webhook.objects.get(owner=world.member)
    response = client.post("/notifications/", {
        "save_preferences": "1", "queued_minutes": "45", "failed_email": "on", "failed_webhook": str(hook.pk),
        "killed_webhook": str(hook.pk),
    })
    assert response.status_code == 302
    choices = {
        p.event: (p.email, p.webhook_id, p.queued_minutes) for p in NotificationPreference.objects.filter(user=world.member)
    }
    assert choices["failed"] == (True, hook.pk, 45)
    assert choices["killed"] == (False, hook.pk, 45)
    assert choices["running"] == (False, None, 45)
    bad = client.post("/notifications/", {"add_webhook": "1", "name": "x", "kind": "json", "url": "not a url"}, HTTP_ACCEPT_LANGUAGE="en")
    assert bad.status_code == 200 and "url" in bad.context["webhook_form"].errors
    someone = UserFactory(username="mallory")
    theirs = Webhook.objects.create(owner=someone, name="theirs", url="https://example.com/h")
    assert client.post(f"/notifications/webhooks/{theirs.pk}/toggle/").status_code == 404
    stolen = client.post("/notifications/", {"save_preferences": "1", "queued_minutes": "5", "failed_webhook": str(theirs.pk)})
    assert stolen.status_code == 200 and "failed_webhook" in stolen.context["form"].errors
