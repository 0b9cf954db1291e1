"""Odd input never reaches a 500, and every /api/v1/ answer is JSON (issue 14: "No input reaches a 500")."""

import json

import pytest

from tests.api.conftest import api_client
from tests.api.test_tasks import body

pytestmark = pytest.mark.django_db

NESTED = "[" * 2000 + "]" * 2000


def post_raw(client, path, raw, content_type="application/json"):
    return client.generic("POST", path, raw, content_type=content_type)


def assert_json(response, code):
    assert response.status_code == code, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return response.json()


@pytest.mark.parametrize("path", ["/api/v1/tasks/", "/api/v1/auth/token/"])
def test_deeply_nested_json_answers_400(world, member_api, path):
    client = member_api if path == "/api/v1/tasks/" else api_client()
    data = assert_json(post_raw(client, path, NESTED), 400)
    assert "detail" in data


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", "a\x00b"),
        ("description", "x\x00"),
        ("image", "registry.example.com/llm/vllm:0.6.0\x00"),
        ("env", [{"name": "A", "value": "x\x00y"}]),
        ("command", ["python\x00"]),
        ("args", ["--port", "\x00"]),
    ],
)
def test_nul_characters_are_refused_on_the_field(world, member_api, field, value):
    data = assert_json(member_api.post("/api/v1/tasks/", body(world, **{field: value}), format="json"), 400)
    assert field in data, data


def test_nul_in_a_mount_path_is_refused(world, member_api):
    mounts = [{"storage": world.storage.pk, "mount_path": "/models\x00"}]
    data = assert_json(member_api.post("/api/v1/tasks/", body(world, mounts=mounts), format="json"), 400)
    assert "mounts" in data


@pytest.mark.parametrize(
    "field, value",
    [("name", 123), ("image", 5), ("description", 1.5), ("command", [1, 2]), ("args", [True]),
     ("env", [{"name": "A", "value": 3}]), ("env", [{"name": 7, "value": "x"}]),
     ("mounts", "/models"), ("command", "python")],
)
def test_a_number_is_not_a_string(world, member_api, field, value):
    data = assert_json(member_api.post("/api/v1/tasks/", body(world, **{field: value}), format="json"), 400)
    assert field in data, data


@pytest.mark.parametrize("page_size", ["-5", "null", "0", "abc", "²", "99999999999999999999"])
def test_odd_page_sizes_are_refused(world, member_api, page_size):
    data = assert_json(member_api.get("/api/v1/tasks/", {"page_size": page_size}), 400)
    assert "page_size" in data, data


def test_page_size_is_capped(world, member_api, settings):
    response = member_api.get("/api/v1/tasks/", {"page_size": settings.API_MAX_PAGE_SIZE + 1})
    assert_json(response, 400)
    assert_json(member_api.get("/api/v1/tasks/", {"page_size": settings.API_MAX_PAGE_SIZE}), 200)


@pytest.mark.parametrize("query", [{"page": "²"}, {"page": "-1"}, {"status": "\x00"}, {"ordering": "\x00"},
                                   {"search": "\x00"}, {"project": "²"}, {"owner": "\x00"}, {"tail": "²"}])
def test_odd_queries_answer_json_not_500(world, member_api, query):
    response = member_api.get("/api/v1/tasks/", query)
    assert response.status_code < 500
    assert response["Content-Type"].startswith("application/json")


def test_a_json_body_over_the_upload_limit_answers_json_400(world, member_api, settings):
    # DRF reads a JSON body through request.body, which Django bounds by DATA_UPLOAD_MAX_MEMORY_SIZE.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    raw = json.dumps(body(world, description="x" * 2000))
    data = assert_json(post_raw(member_api, "/api/v1/tasks/", raw), 400)
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in data["detail"]


def test_a_long_form_body_answers_json_400(world, member_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    raw = "description=" + "x" * 2000
    data = assert_json(post_raw(member_api, "/api/v1/tasks/", raw, "application/x-www-form-urlencoded"), 400)
    assert "detail" in data


def test_too_many_query_fields_answer_json_400(world, member_api, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    query = "&".join(f"f{i}=1" for i in range(20))
    response = member_api.generic("POST", f"/api/v1/tasks/?{query}", "a=1&" * 20, content_type="application/x-www-form-urlencoded")
    assert_json(response, 400)


def test_a_very_long_path_answers_json_404(world, member_api):
    assert_json(member_api.get("/api/v1/tasks/" + "x" * 20000 + "/"), 404)


def test_an_unexpected_error_answers_json_500(world, member_api, monkeypatch):
    from deploy_portal.api.tasks import views

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.TaskViewSet, "list", crash)
    client = api_client(world.member)
    client.raise_request_exception = False
    data = assert_json(client.get("/api/v1/tasks/"), 500)
    assert "boom" not in data["detail"]


def test_the_database_down_answers_json_503(world, member_api, monkeypatch):
    from django.db import OperationalError
    from django.db.models.query import QuerySet

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(QuerySet, "_fetch_all", down)
    response = api_client().post("/api/v1/auth/token/", {"username": "alice", "password": "x"}, format="json")
    assert_json(response, 503)
    assert response["Retry-After"] == "5"


def test_a_csrf_refusal_answers_json_403(world):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.member)
    # A session POST without its CSRF token, to a view Django guards (not DRF's own check).
    response = client.post("/api/v1/nowhere/", {})
    assert response.status_code in (403, 404)
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("value", ["²", "-1", "x", "99999999999999999999999"])
def test_the_comparison_page_refuses_an_odd_task_id_with_400(world, client, value):
    client.force_login(world.member)
    response = client.get("/evaluations/", {"task": value})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "name", ["evil\u202egpj.exe", "zero\u200bwidth", "bell\x07", "new\nline", "bom\ufeff", "iso\u2066late", "line\u2028sep"]
)
def test_names_refuse_control_bidi_and_zero_width_characters(world, member_api, name):
    data = assert_json(member_api.post("/api/v1/tasks/", body(world, name=name), format="json"), 400)
    assert "U+" in " ".join(data["name"])


@pytest.mark.parametrize("name", ["千问-7b", "Llama 3 (test)", "qwen_v2.5"])
def test_names_in_any_script_are_kept(world, member_api, name):
    assert_json(member_api.post("/api/v1/tasks/", body(world, name=name, command=[], args=[]), format="json"), 201)


@pytest.mark.parametrize(
    "setting, overrides, field",
    [
        ("TASK_MAX_ENV_VARS", {"env": [{"name": f"V{i}", "value": "1"} for i in range(4)]}, "env"),
        ("TASK_MAX_ENV_NAME_LENGTH", {"env": [{"name": "V" * 4, "value": "1"}]}, "env"),
        ("TASK_MAX_ENV_VALUE_LENGTH", {"env": [{"name": "V", "value": "1234"}]}, "env"),
        ("TASK_MAX_ENV_BYTES", {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "1"}]}, "env"),
        ("TASK_MAX_COMMAND_WORDS", {"command": ["a", "b", "c", "d"]}, "command"),
        ("TASK_MAX_COMMAND_WORDS", {"args": ["a", "b", "c", "d"]}, "args"),
        ("TASK_MAX_COMMAND_WORD_LENGTH", {"args": ["abcd"]}, "args"),
        ("TASK_MAX_DESCRIPTION_LENGTH", {"description": "abcd"}, "description"),
    ],
)
def test_size_limits_are_settings_with_field_messages(world, member_api, settings, setting, overrides, field):
    setattr(settings, setting, 3)
    settings.COMMAND_OVERRIDE = "everyone"
    data = assert_json(member_api.post("/api/v1/tasks/", body(world, **{"command": [], "args": [], **overrides}),
                                       format="json"), 400)
    assert list(data) == [field], data
    assert "3" in " ".join(data[field])


def test_a_200_kb_environment_value_is_refused_by_default(world, member_api):
    env = [{"name": "BIG", "value": "x" * 200_000}]
    data = assert_json(member_api.post("/api/v1/tasks/", body(world, env=env, command=[], args=[]), format="json"), 400)
    assert "BIG" in " ".join(data["env"])


@pytest.mark.parametrize("field", ["command", "args"])
def test_on_the_local_runtime_only_managers_set_a_command(world, member_api, manager, settings, field):
    settings.COMMAND_OVERRIDE = "managers"
    override = {"command": [], "args": [], field: ["sh", "-c", "cat /proc/$PPID/environ"]}
    data = assert_json(member_api.post("/api/v1/tasks/", body(world, **override), format="json"), 400)
    assert list(data) == [field] and "Only managers" in data[field][0]

    world.project.members.add(manager)
    world.vc.users.add(manager)
    assert_json(api_client(manager).post("/api/v1/tasks/", body(world, **override), format="json"), 201)


def test_a_member_may_edit_a_task_whose_command_a_manager_set(world, member_api, settings):
    from tests.api.conftest import world_task

    settings.COMMAND_OVERRIDE = "managers"
    task = world_task(world, name="managed", command=["python", "-m", "demo_model"])
    assert_json(member_api.patch(f"/api/v1/tasks/{task.pk}/", {"replicas": 2}, format="json"), 200)
    response = member_api.patch(f"/api/v1/tasks/{task.pk}/", {"command": ["sh"]}, format="json")
    assert "command" in assert_json(response, 400)


def test_on_kubernetes_everyone_may_set_a_command_by_default(monkeypatch):
    import subprocess
    import sys

    code = "from django.conf import settings; print(settings.COMMAND_OVERRIDE)"
    env = {**__import__("os").environ, "DEPLOY_RUNTIME": "kubernetes", "DJANGO_SETTINGS_MODULE": "deploy_portal.settings"}
    env.pop("COMMAND_OVERRIDE", None)
    out = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "everyone"
