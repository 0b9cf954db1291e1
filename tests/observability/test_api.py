"""The history through the API: GPU-hours for chargeback, a VC's utilisation; scoped, bad input a field error."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def api(user):
    client = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    client.force_authenticate(user)
    return client


def test_gpu_hours_per_project_and_per_user_scoped_to_the_users_projects(history, manager):
    world, _secret = history
    today = timezone.localdate()
    period = {"since": str(today - timedelta(days=1)), "until": str(today)}
    assert api(world.member).get("/api/v1/gpu-hours/", period).json() == [
        {"id": world.project.pk, "name": "llm", "virtual_cluster": "h100", "gpu_hours": 2.0},
    ]
    rows = api(manager).get("/api/v1/gpu-hours/", {**period, "by": "owner"}).json()
    assert [(row["name"], row["gpu_hours"]) for row in rows] == [("bob", 4.0), ("alice", 2.0)]
    other = api(manager).get("/api/v1/gpu-hours/", {**period, "virtual_cluster": _secret.pk}).json()
    assert other == []


def test_bad_periods_are_field_errors(history):
    world, _secret = history
    client = api(world.member)
    answer = client.get("/api/v1/gpu-hours/", {"since": "2026-03-10", "until": "2026-03-01"})
    assert answer.status_code == 400 and answer.json() == {"until": ["The end of the period is before its start."]}
    answer = client.get("/api/v1/gpu-hours/", {"since": "yesterday"})
    assert answer.status_code == 400 and set(answer.json()) == {"since", "until"}
    assert client.get("/api/v1/gpu-hours/", {"since": "2026-03-01", "until": "2026-03-02", "by": "x"}).status_code == 400


def test_a_vcs_utilisation_for_those_who_may_see_it(history):
    world, secret = history
    client = api(world.member)
    answer = client.get(f"/api/v1/virtual-clusters/{world.vc.pk}/utilisation/", {"range": "7d"}).json()
    assert answer["range"] == "7d" and {point["allocated_gpus"] for point in answer["points"]} == {6.0}
    assert {point["total_gpus"] for point in answer["points"]} == {16.0}
    assert client.get(f"/api/v1/virtual-clusters/{secret.pk}/utilisation/").status_code == 404
    assert client.get(f"/api/v1/virtual-clusters/{world.vc.pk}/utilisation/", {"range": "1y"}).status_code == 400
