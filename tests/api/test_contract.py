"""SPEC's REST API contract, walked route by route: each route exists with exactly SPEC's methods, the
schema documents exactly those, and a walk through them answers as SPEC says."""

import re

import pytest
from django.test import Client

from tests.api.conftest import api_client, holding_task

pytestmark = pytest.mark.django_db

# SPEC.md, "REST API contract (/api/v1/)": route → methods.
SPEC_TABLE = {
    "projects/": {"GET"},
    "virtual-clusters/": {"GET"},
    "storages/": {"GET"},
    "tasks/": {"GET", "POST"},
    "tasks/{id}/": {"GET", "PATCH", "DELETE"},
    "tasks/{id}/start/": {"POST"},
    "tasks/{id}/stop/": {"POST"},
    "tasks/{id}/pin/": {"POST"},
    "tasks/{id}/unpin/": {"POST"},
    "tasks/{id}/force-start/": {"GET", "POST"},
    "tasks/{id}/copy/": {"POST"},
    "tasks/{id}/events/": {"GET"},
    "tasks/{id}/instances/": {"GET"},
    "instances/{id}/logs/": {"GET"},
    "tasks/{id}/evaluations/": {"GET", "POST"},
    "evaluations/{id}/": {"GET"},
    "queue/": {"GET"},
    # Issue 13 (newer than SPEC): every start is a run with its own instances and logs.
    "tasks/{id}/runs/": {"GET"},
    "tasks/{id}/usage/": {"GET"},
    "api-keys/": {"GET", "POST"},
    "api-keys/{id}/": {"GET", "DELETE"},
    "runs/{id}/": {"GET"},
    # Issue 16: the utilisation history and GPU-hours, for scripts as for the pages.
    "gpu-hours/": {"GET"},
    "virtual-clusters/{id}/utilisation/": {"GET"},
    # Issue 17: quotas and priority classes, read by everyone concerned and written by managers.
    "quotas/": {"GET", "POST"},
    "quotas/{id}/": {"GET", "PATCH", "DELETE"},
    "priority-classes/": {"GET", "POST"},
    "priority-classes/{id}/": {"GET", "PATCH", "DELETE"},
    # Issue 12: the platform's health (database, broker, workers, beat), as /readyz says it.
    "health/": {"GET"},
    # The index of the resources; authentication, schema and docs, named in the paragraph above the table.
    "": {"GET"},
    "auth/token/": {"POST"},
}
NOT_IN_SCHEMA = {"schema/", "docs/"}


@pytest.fixture
def schema():
    response = Client().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_documents_exactly_specs_routes_and_methods(schema):
    documented = {
        re.sub(r"\{\w+\}", "{id}", path.removeprefix("/api/v1/")): {m.upper() for m in operations if m != "parameters"}
        for path, operations in schema["paths"].items()
    }

    assert documented == SPEC_TABLE


def test_the_schema_describes_the_operations_bodies_and_errors(schema):
    paths = schema["paths"]
    force_start = paths["/api/v1/tasks/{id}/force-start/"]
    assert set(force_start["get"]["responses"]) >= {"200", "401", "403", "404", "409"}
    assert force_start["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ForceStartPreview"
    }
    assert set(paths["/api/v1/tasks/{id}/start/"]["post"]["responses"]) >= {"200", "401", "404", "409"}
    assert "requestBody" in paths["/api/v1/tasks/{id}/copy/"]["post"]
    assert set(paths["/api/v1/tasks/"]["post"]["responses"]) >= {"201", "400", "401"}
    assert "text/plain" in paths["/api/v1/instances/{id}/logs/"]["get"]["responses"]["200"]["content"]
    task = schema["components"]["schemas"]["Task"]["properties"]
    assert {"allowed_actions", "queue_position", "pending_reason", "endpoint", "status_display"} <= set(task)


def test_schema_and_docs_are_served(schema):
    assert schema["openapi"].startswith("3.")
    docs = Client().get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in docs.content  # no CDN needed


@pytest.mark.parametrize("route, methods", [(r, m) for r, m in SPEC_TABLE.items() if "evaluations" not in r])
def test_each_route_allows_exactly_specs_methods(world, running_task, route, methods):
    ids = {"tasks": running_task.pk, "instances": running_task.instances.get().pk, "runs": running_task.current_run_id}
    url = "/api/v1/" + route.replace("{id}", str(ids.get(route.split("/")[0], 0)))

    response = api_client(world.member).options(url)

    assert response.status_code == 200, url
    assert set(response["Allow"].split(", ")) - {"HEAD", "OPTIONS"} == methods


def test_walk_the_table(world, people):
    """As a member then a manager, through every route of the table, in the order a script would use them."""
    member, manager = api_client(world.member), api_client(people.manager)

    assert [p["id"] for p in member.get("/api/v1/projects/").json()["results"]] == [world.project.pk]
    [vc] = member.get("/api/v1/virtual-clusters/").json()["results"]
    assert (vc["id"], vc["free_gpus"], vc["total_gpus"]) == (world.vc.pk, 16, 16)
    [storage] = member.get("/api/v1/storages/").json()["results"]

    created = member.post("/api/v1/tasks/", {
        "name": "walk", "project": world.project.pk, "image": "registry.example.com/llm/vllm:0.6.0",
        "virtual_cluster": vc["id"], "sku_count": 8, "replicas": 2, "container_port": 8000,
        "mounts": [{"storage": storage["id"], "mount_path": "/models"}],
    }, format="json")
    assert created.status_code == 201
    task = f"/api/v1/tasks/{created.json()['id']}/"
    assert member.get("/api/v1/tasks/?search=walk").json()["count"] == 1
    assert member.patch(task, {"description": "both machines"}, format="json").json()["description"] == "both machines"

    assert member.post(task + "start/").json()["status"] == "deploying"
    instances = member.get(task + "instances/").json()["results"]
    assert sorted(i["node_name"] for i in instances) == ["gpu-00", "gpu-01"]
    log = member.get(f"/api/v1/instances/{instances[0]['id']}/logs/?tail=10")
    assert log.status_code == 200 and log["Content-Type"].startswith("text/plain")

    waiting = member.post(task + "copy/", {"name": "walk-2", "replicas": 1}, format="json").json()
    second = f"/api/v1/tasks/{waiting['id']}/"
    assert member.post(second + "start/").json()["status"] == "queued"
    [queue] = member.get("/api/v1/queue/").json()
    assert queue["queued_count"] == 1 and queue["mine"][0]["id"] == waiting["id"]

    assert manager.post(second + "pin/").json()["pinned"] is True
    assert manager.post(second + "unpin/").json()["pinned"] is False
    manager.post(second + "pin/")
    preview = manager.get(second + "force-start/").json()
    assert preview["fits"] is True and [v["name"] for v in preview["victims"]] == ["walk"]
    assert manager.post(second + "force-start/").json()["status"] == "deploying"
    assert member.get(task).json()["status"] == "killed"

    operations = [e["operation"] for e in member.get(task + "events/").json()["results"]]
    assert operations[:3] == ["create", "edit", "start"] and operations[-1] == "kill"
    assert member.post(second + "stop/").json()["status"] == "stopped"
    assert member.delete(second).status_code == 204
    assert member.get(second).status_code == 404


def test_a_running_task_answers_its_endpoint(world, member_api):
    task = holding_task(world, endpoint_port=30999)

    assert member_api.get(f"/api/v1/tasks/{task.pk}/").json()["endpoint"] == "http://127.0.0.1:30999"
