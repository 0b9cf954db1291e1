"""A secret env var through the API: write-only (answered as ••••, kept when sent back masked or left out),
refused in words when there is nothing to keep, and never in any answer, whoever reads it."""

import pytest

from tasks.models import Task
from tasks.secrets import MASK, env_open
from tests.api.conftest import api_client
from tests.api.test_tasks import body

pytestmark = pytest.mark.django_db
TOKEN = "hf_s3cr3t-value-that-must-never-show"
SECRET_ENV = [{"name": "SHM_SIZE", "value": "60G"}, {"name": "HF_TOKEN", "value": TOKEN, "secret": True}]


def _opened(pk):
    return {name: (value, secret) for name, value, secret in env_open(Task.objects.get(pk=pk).env)}


@pytest.fixture
def created(world, member_api):
    response = member_api.post("/api/v1/tasks/", body(world, env=SECRET_ENV, command=[], args=[]), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_the_api_answers_a_secret_as_a_mask_and_keeps_it_when_sent_back(world, member_api, created):
    assert created["env"] == [
        {"name": "SHM_SIZE", "value": "60G", "secret": False}, {"name": "HF_TOKEN", "value": MASK, "secret": True},
    ]
    pk = created["id"]
    read = member_api.get(f"/api/v1/tasks/{pk}/").json()
    # What a client read, sent back as it is (a GET-modify-PUT): the saved value stays.
    read["env"][0]["value"] = "30G"
    edited = member_api.patch(f"/api/v1/tasks/{pk}/", {"env": read["env"]}, format="json")
    assert edited.status_code == 200, edited.json()
    assert _opened(pk) == {"SHM_SIZE": ("30G", False), "HF_TOKEN": (TOKEN, True)}
    # Left out: kept too; a new value replaces it.
    member_api.patch(f"/api/v1/tasks/{pk}/", {"env": [{"name": "HF_TOKEN", "secret": True}]}, format="json")
    assert _opened(pk) == {"HF_TOKEN": (TOKEN, True)}
    member_api.patch(f"/api/v1/tasks/{pk}/", {"env": [{"name": "HF_TOKEN", "value": "v2", "secret": True}]}, format="json")
    assert _opened(pk) == {"HF_TOKEN": ("v2", True)}


def test_a_copy_through_the_api_keeps_the_sources_secret(world, member_api, created):
    response = member_api.post(f"/api/v1/tasks/{created['id']}/copy/", {"replicas": 1}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["env"][1] == {"name": "HF_TOKEN", "value": MASK, "secret": True}
    assert _opened(response.json()["id"])["HF_TOKEN"] == (TOKEN, True)


def test_a_secret_without_a_value_to_keep_is_refused_on_the_field(world, member_api):
    response = member_api.post(
        "/api/v1/tasks/", body(world, env=[{"name": "HF_TOKEN", "secret": True}], command=[], args=[]), format="json",
    )
    assert response.status_code == 400
    assert response.json()["env"] == ["The secret HF_TOKEN needs a value: none is saved to keep."]
    assert not Task.objects.exists()


def test_no_answer_of_the_api_holds_the_value(world, member_api, created, people):
    pk = created["id"]
    manager_api = api_client(people.manager)
    for client in (member_api, manager_api):
        for path in (
            "/api/v1/tasks/", f"/api/v1/tasks/{pk}/", f"/api/v1/tasks/{pk}/events/", f"/api/v1/tasks/{pk}/runs/",
            "/api/v1/schema/",
        ):
            response = client.get(path)
            assert response.status_code == 200, path
            assert TOKEN not in response.content.decode(), path


def test_the_schema_describes_the_secret_flag(member_api):
    schema = member_api.get("/api/v1/schema/?format=json").json()
    env_var = schema["components"]["schemas"]["EnvVar"]["properties"]
    assert env_var["secret"]["type"] == "boolean" and "••••" in env_var["value"]["description"]


@pytest.mark.parametrize("secret", [None, [], {}, "maybe", 2], ids=["null", "list", "object", "word", "two"])
def test_a_secret_flag_that_is_not_a_boolean_answers_400_on_the_field(world, member_api, secret):
    env = [{"name": "HF_TOKEN", "value": "x", "secret": secret}]
    response = member_api.post("/api/v1/tasks/", body(world, env=env, command=[], args=[]), format="json")
    assert response.status_code == 400 and response["Content-Type"].startswith("application/json")
    assert "secret" in response.json()["env"]["0"]  # the item, by its index
    assert not Task.objects.exists()
