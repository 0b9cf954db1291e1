"""What a developer's first script meets: the index, a minimal POST, names beside ids, answers in their language."""

import pytest

from tests.api.conftest import api_client

pytestmark = pytest.mark.django_db


def test_the_index_lists_the_resources(member_api):
    index = member_api.get("/api/v1/").json()
    assert index["tasks"].endswith("/api/v1/tasks/") and index["queue"].endswith("/api/v1/queue/")
    assert {"projects", "virtual_clusters", "storages", "token", "schema", "docs"} <= set(index)
    assert member_api.get(index["tasks"]).status_code == 200


def test_a_minimal_post_succeeds_with_the_forms_defaults(world, member_api):
    minimal = {
        "name": "first", "project": world.project.pk, "virtual_cluster": world.vc.pk,
        "image": "registry.example.com/llm/vllm:0.6.0",
    }
    response = member_api.post("/api/v1/tasks/", minimal, format="json")
    assert response.status_code == 201, response.json()
    task = response.json()
    assert task["container_port"] == 8000 and task["expose_port"] is True
    assert task["project_name"] == "llm" and task["virtual_cluster_name"] == "h100"


@pytest.mark.parametrize("language, detail", [("zh-hans", "未找到。"), ("en", "Not found.")])
def test_a_missing_task_answers_in_the_requests_language(world, language, detail):
    client = api_client(world.member)
    client.credentials(HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"], HTTP_ACCEPT_LANGUAGE=language)
    response = client.get("/api/v1/tasks/987654/")
    assert response.status_code == 404
    assert response.json() == {"detail": detail}


def test_the_browsable_api_names_its_pages_in_chinese(world):
    client = api_client(world.member)
    client.credentials(HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"], HTTP_ACCEPT_LANGUAGE="zh-hans")
    page = client.get("/api/v1/tasks/", HTTP_ACCEPT="text/html").content.decode()
    assert "Task List" not in page
    assert "<h1>部署任务</h1>" in page or "<h1>任务</h1>" in page
