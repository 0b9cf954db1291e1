"""Tasks through the API: create, read, edit, delete and copy, with SPEC's answers for bad input and refusals."""

import pytest

from tasks.models import Task
from tests.api.conftest import api_client, holding_task, world_task
from tests.factories import NodeFactory, StorageFactory, VirtualClusterFactory

pytestmark = pytest.mark.django_db

TASK_FIELDS = {
    "id", "name", "project", "project_name", "task_type", "image", "virtual_cluster", "virtual_cluster_name",
    "sku_count", "replicas", "expose_port", "container_port", "external_port", "description", "env", "mounts", "command", "args", "status",
    "status_display", "pinned", "queue_position", "pending_reason", "endpoint", "owner", "created_at",
    "queued_at", "started_at", "allowed_actions", "priority_class", "public_endpoint", "gateway_url",
}


def body(world, **overrides):
    data = {
        "name": "qwen-7b",
        "project": world.project.pk,
        "image": "registry.example.com/llm/vllm:0.6.0",
        "virtual_cluster": world.vc.pk,
        "sku_count": 2,
        "replicas": 1,
        "expose_port": True,
        "container_port": 8000,
        "env": [{"name": "SHM_SIZE", "value": "60G"}],
        "mounts": [{"storage": world.storage.pk, "mount_path": "/models"}],
        "command": ["python", "-m", "vllm.entrypoints.openai.api_server"],
        "args": ["--port", "8000"],
    }
    data.update(overrides)
    return data


@pytest.mark.usefixtures("anyone_sets_commands")
def test_create_answers_the_task_as_spec_reads_it(world, member_api):
    response = member_api.post("/api/v1/tasks/", body(world), format="json")

    assert response.status_code == 201, response.data
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert task["status"] == "not_deployed" and task["status_display"] == "Not deployed"
    assert task["owner"] == "alice" and task["project"] == world.project.pk
    assert task["env"] == [{"name": "SHM_SIZE", "value": "60G", "secret": False}]
    assert task["mounts"] == [{"storage": world.storage.pk, "mount_path": "/models"}]
    assert task["command"] == ["python", "-m", "vllm.entrypoints.openai.api_server"]
    assert task["endpoint"] is None and task["queue_position"] is None
    assert task["allowed_actions"] == ["start", "copy", "edit", "delete"]
    saved = Task.objects.get(pk=task["id"])
    assert saved.owner == world.member and saved.args == ["--port", "8000"]


def other_vc_with_machine():
    vc = VirtualClusterFactory(name="a100")
    NodeFactory(virtual_cluster=vc, sku_capacity=8)
    return vc


BAD_INPUTS = {
    "image from another registry": ({"image": "docker.io/library/nginx:1"}, "image", "allowed registry"),
    "image not a reference": ({"image": "registry.example.com/Bad Image"}, "image", "not a valid image reference"),
    "no SKU": ({"sku_count": 0}, "sku_count", "at least 1"),
    "more SKUs than a machine": ({"sku_count": 9}, "sku_count", "the largest machine offers 8"),
    "more instances than the machines hold": ({"sku_count": 8, "replicas": 3}, "sku_count", "could host only 2"),
    "no replicas": ({"replicas": 0}, "replicas", "between 1 and"),
    "too many replicas": ({"replicas": 17}, "replicas", "between 1 and"),
    "container port out of range": ({"container_port": 70000}, "container_port", "between 1 and 65535"),
    "external port out of range": ({"external_port": 80}, "external_port", "between 30000 and 32767"),
    "bad env name": ({"env": [{"name": "1ABC", "value": "x"}]}, "env", "not a valid environment variable"),
    "env name twice": (
        {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "env", "more than once",
    ),
    "SHM_SIZE without unit": ({"env": [{"name": "SHM_SIZE", "value": "60"}]}, "env", "number with a unit"),
    "SHM_SIZE over memory": ({"env": [{"name": "SHM_SIZE", "value": "1000G"}]}, "env", "larger than the instance"),
    "relative mount path": ("mount:models", "mounts", "must be absolute"),
    "mount path with ..": ("mount:/models/../etc", "mounts", "must not contain"),
    "mount path twice": ("mount:/models,/models", "mounts", "more than once"),
    "mount over /proc": ("mount:/proc/x", "mounts", "shadow a system path"),
    "no name": ({"name": ""}, "name", ""),
    "command not a list": ({"command": "python"}, "command", ""),
}


@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_answers_400_on_the_field_and_saves_nothing(world, member_api, case):
    overrides, field, words = case
    if isinstance(overrides, str):
        paths = overrides.removeprefix("mount:").split(",")
        overrides = {"mounts": [{"storage": world.storage.pk, "mount_path": p} for p in paths]}

    response = member_api.post("/api/v1/tasks/", body(world, **overrides), format="json")

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert words in str(response.json()[field])
    assert not Task.objects.exists()


def test_an_external_port_held_by_a_running_task_is_refused(world, member_api):
    holding_task(world, external_port=31000, endpoint_port=31000)

    response = member_api.post("/api/v1/tasks/", body(world, external_port=31000), format="json")

    assert response.status_code == 400
    assert "already used" in str(response.json()["external_port"])


@pytest.mark.parametrize("field", ["project", "virtual_cluster", "storage"])
def test_an_ungranted_relation_answers_exactly_like_a_missing_one(world, member_api, field):
    from tests.factories import ProjectFactory

    ungranted = {
        "project": lambda: ProjectFactory(name="secret").pk,
        "virtual_cluster": lambda: other_vc_with_machine().pk,
        "storage": lambda: StorageFactory(name="private").pk,
    }[field]()

    def post(pk):
        if field == "storage":
            return member_api.post(
                "/api/v1/tasks/", body(world, mounts=[{"storage": pk, "mount_path": "/m"}]), format="json"
            )
        return member_api.post("/api/v1/tasks/", body(world, **{field: pk}), format="json")

    granted_but_absent, not_granted = post(987654), post(ungranted)

    assert granted_but_absent.status_code == not_granted.status_code == 400
    assert granted_but_absent.json() == not_granted.json()
    assert "does not exist or" in str(not_granted.json())


def test_patch_edits_an_idle_task(world, member_api, idle_task):
    response = member_api.patch(f"/api/v1/tasks/{idle_task.pk}/", {"sku_count": 4, "description": "big"}, format="json")

    assert response.status_code == 200, response.data
    assert response.json()["sku_count"] == 4
    idle_task.refresh_from_db()
    assert (idle_task.sku_count, idle_task.description) == (4, "big")


def test_patch_validates_the_merged_configuration(world, member_api, idle_task):
    response = member_api.patch(f"/api/v1/tasks/{idle_task.pk}/", {"image": "quay.io/x/y:1"}, format="json")

    assert response.status_code == 400 and "image" in response.json()


def test_the_project_cannot_be_changed(world, member_api, idle_task):
    from tests.factories import ProjectFactory

    other = ProjectFactory(name="other", members=[world.member])

    response = member_api.patch(f"/api/v1/tasks/{idle_task.pk}/", {"project": other.pk}, format="json")

    assert response.status_code == 400
    assert response.json() == {"project": ["This field cannot be changed after creation."]}


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_a_task_holding_gpus_cannot_be_edited_or_deleted(world, member_api, running_task, method):
    response = getattr(member_api, method)(f"/api/v1/tasks/{running_task.pk}/", {"name": "x"}, format="json")

    assert response.status_code == 409
    verb = {"patch": "edit", "delete": "delete"}[method]
    assert response.json() == {"detail": f"Cannot {verb} task “serving”: it is running.", "status": "running"}
    assert Task.objects.filter(pk=running_task.pk, name="serving").exists()


def test_delete_removes_an_idle_task(member_api, idle_task):
    assert member_api.delete(f"/api/v1/tasks/{idle_task.pk}/").status_code == 204
    assert not Task.objects.filter(pk=idle_task.pk).exists()


def test_put_is_not_offered(member_api, idle_task):
    assert member_api.put(f"/api/v1/tasks/{idle_task.pk}/", {}, format="json").status_code == 405


def test_copy_keeps_type_and_project_and_takes_overrides(world, member_api, running_task):
    response = member_api.post(f"/api/v1/tasks/{running_task.pk}/copy/", {"replicas": 2}, format="json")

    assert response.status_code == 201, response.data
    copy = response.json()
    assert copy["id"] != running_task.pk and copy["status"] == "not_deployed"
    assert copy["name"] == "serving (copy)" and copy["replicas"] == 2
    assert copy["project"] == world.project.pk and copy["image"] == running_task.image


def test_copy_refuses_another_task_type_or_project(world, member_api, running_task):
    from tests.factories import ProjectFactory

    other = ProjectFactory(name="other", members=[world.member])

    response = member_api.post(f"/api/v1/tasks/{running_task.pk}/copy/", {"project": other.pk}, format="json")

    assert response.status_code == 400
    assert response.json() == {"project": ["A copy keeps the task type and project of its source."]}


def test_a_running_task_reads_its_endpoint(world, member_api, running_task):
    task = member_api.get(f"/api/v1/tasks/{running_task.pk}/").json()

    assert task["endpoint"] == "http://127.0.0.1:30080"
    assert task["allowed_actions"] == ["stop", "evaluate", "copy"]


@pytest.mark.usefixtures("anyone_sets_commands")
def test_events_are_the_timeline(world, member_api):
    created = member_api.post("/api/v1/tasks/", body(world), format="json").json()

    response = member_api.get(f"/api/v1/tasks/{created['id']}/events/")

    assert response.status_code == 200
    [event] = response.json()["results"]
    assert event["operation"] == "create" and event["actor"] == "alice" and event["message"] == "Task created."


def test_instances_read_node_gpu_and_status(member_api, running_task):
    response = member_api.get(f"/api/v1/tasks/{running_task.pk}/instances/")

    assert response.status_code == 200
    [instance] = response.json()["results"]
    assert instance["node_name"] == "gpu-00" and instance["gpu_type"] == "NVIDIA-H100"
    assert (instance["gpu_count"], instance["status"], instance["restarts"]) == (1, "ready", 0)


def test_anonymous_answers_401_with_a_token_challenge():
    response = api_client().get("/api/v1/tasks/")

    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"


def test_a_session_works_too(client, world, idle_task):
    from tests.factories import PASSWORD

    assert client.login(username="alice", password=PASSWORD)

    assert client.get("/api/v1/tasks/").json()["count"] == 1


def test_token_is_obtained_with_username_and_password(world):
    from tests.factories import PASSWORD

    response = api_client().post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    authed = api_client()
    authed.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert authed.get("/api/v1/projects/").json()["results"][0]["name"] == "llm"

    wrong = api_client().post("/api/v1/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert wrong.status_code == 400


def test_tasks_of_other_projects_are_not_listed(world, member_api, idle_task):
    from tests.factories import ProjectFactory

    world_task(world, name="elsewhere", project=ProjectFactory(name="other"))

    names = [t["name"] for t in member_api.get("/api/v1/tasks/").json()["results"]]

    assert names == ["idle"]


@pytest.mark.parametrize(
    "url", ["/api/v1/tasks/?search=%00", "/api/v1/tasks/?owner=a%00b", "/api/v1/tasks/?project=abc"]
)
def test_unusable_filter_values_answer_400(member_api, url):
    assert member_api.get(url).status_code == 400


def test_ids_beyond_the_database_range_are_simply_missing(member_api):
    assert member_api.get("/api/v1/tasks/99999999999999999999/").status_code == 404
    assert member_api.get("/api/v1/instances/99999999999999999999/logs/").status_code == 404


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"sku_count": 10**30}, "sku_count"),
        ({"replicas": 10**30}, "replicas"),
        ({"external_port": 10**30}, "external_port"),
        ({"name": "x" * 101}, "name"),
        ({"description": "nul\x00"}, "description"),
        ({"env": [{"name": "A", "value": "nul\x00"}]}, "env"),
    ],
)
def test_values_the_database_could_not_hold_answer_400(world, member_api, overrides, field):
    response = member_api.post("/api/v1/tasks/", body(world, **overrides), format="json")

    assert response.status_code == 400 and field in response.json()


def test_a_session_must_send_its_csrf_token_to_change_anything(world, idle_task):
    from django.test import Client

    from tests.factories import PASSWORD

    browser = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en")
    assert browser.login(username="alice", password=PASSWORD)
    url = f"/api/v1/tasks/{idle_task.pk}/start/"

    assert browser.post(url).status_code == 403
    browser.get("/api/v1/docs/")  # any page that hands out the CSRF cookie
    token = browser.cookies["csrftoken"].value
    assert browser.post(url, HTTP_X_CSRFTOKEN=token).status_code == 200


@pytest.mark.django_db
def test_a_manager_outside_the_project_edits_with_the_owners_grants(world, manager_api, idle_task):
    """The serializer resolves relations against the same grants the service checks (the owner's)."""
    answer = manager_api.patch(
        f"/api/v1/tasks/{idle_task.pk}/",
        {"project": world.project.pk, "virtual_cluster": world.vc.pk, "description": "ops"}, format="json",
    )
    assert answer.status_code == 200, answer.json()
    assert answer.json()["description"] == "ops"
