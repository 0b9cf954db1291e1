"""The gateway's keys through the API (made once, listed without the key, revoked, scoped to what is one's own),
a task's hourly usage, and its stable gateway URL."""

from datetime import timedelta

import pytest
from django.utils import timezone

from endpoints.keys import key_digest
from endpoints.models import ApiKey, UsageHour
from tests.api.conftest import api_client, world_task
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_key_is_answered_once_kept_as_a_digest_listed_and_revoked(world, member_api):
    made = member_api.post("/api/v1/api-keys/", {"name": "laptop", "project": world.project.pk}, format="json")
    assert made.status_code == 201, made.json()
    key = made.json()["key"]
    assert key.startswith(made.json()["prefix"]) and len(key) > 40
    stored = ApiKey.objects.get()
    assert stored.digest == key_digest(key) and key not in str(stored.__dict__)
    listed = member_api.get("/api/v1/api-keys/").json()["results"]
    assert [row["name"] for row in listed] == ["laptop"] and listed[0]["key"] is None
    assert member_api.delete(f"/api/v1/api-keys/{stored.pk}/").status_code == 204
    assert ApiKey.objects.get().revoked_at is not None and not ApiKey.objects.usable().exists()
    # Someone else's key is not there for another user.
    assert api_client(UserFactory()).delete(f"/api/v1/api-keys/{stored.pk}/").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x\u202e"}, "name"),
        ({"name": "k", "project": "other"}, "project"),
        ({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "k", "rate_limit": 0}, "rate_limit"),
        ({"name": "k", "tasks": "hidden"}, "tasks"),
    ],
    ids=["blank-name", "bidi-name", "not-my-project", "expired", "zero-rate", "hidden-task"],
)
def test_a_key_that_cannot_be_made_is_refused_on_its_field(world, member_api, body, field):
    if body.get("project") == "other":
        body["project"] = ProjectFactory().pk
    if body.get("tasks") == "hidden":
        body["tasks"] = [world_task(world, project=ProjectFactory()).pk]
    answer = member_api.post("/api/v1/api-keys/", body, format="json")
    assert answer.status_code == 400 and field in answer.json(), answer.json()
    assert not ApiKey.objects.exists()


def test_the_task_answers_its_gateway_url_and_its_usage_per_hour(world, member_api, settings):
    settings.GATEWAY_URL = "https://gw.example.com/"
    task = world_task(world, name="qwen chat")
    twin_a, twin_b = world_task(world, name="twin"), world_task(world, name="twin")
    answer = member_api.get(f"/api/v1/tasks/{task.pk}/").json()
    assert answer["gateway_url"] == "https://gw.example.com/llm/qwen%20chat/"
    assert member_api.get(f"/api/v1/tasks/{twin_a.pk}/").json()["gateway_url"] == f"https://gw.example.com/llm/{twin_a.pk}/"
    listed = {row["id"]: row["gateway_url"] for row in member_api.get("/api/v1/tasks/").json()["results"]}
    assert listed[twin_b.pk].endswith(f"/llm/{twin_b.pk}/") and listed[task.pk].endswith("/llm/qwen%20chat/")
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for gateway in range(2):  # two gateways wrote the same hour: summed
        UsageHour.objects.create(hour=hour, task=task, project=world.project, requests=3, errors=gateway,
                                 latency_ms_total=300, latency_ms_max=150 + gateway, prompt_tokens=10, completion_tokens=20)
    UsageHour.objects.create(hour=hour - timedelta(hours=30), task=task, project=world.project, requests=99)
    usage = member_api.get(f"/api/v1/tasks/{task.pk}/usage/").json()
    assert len(usage) == 24 and sum(row["requests"] for row in usage) == 6
    assert usage[-1] == {"hour": usage[-1]["hour"], "requests": 6, "errors": 1, "latency_ms_mean": 100.0,
                         "latency_ms_max": 151, "prompt_tokens": 20, "completion_tokens": 40}
    assert member_api.get(f"/api/v1/tasks/{task.pk}/usage/?hours=0").status_code == 400
    settings.GATEWAY_URL = ""
    assert member_api.get(f"/api/v1/tasks/{task.pk}/").json()["gateway_url"] is None
