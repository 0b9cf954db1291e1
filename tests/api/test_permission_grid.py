"""Who may do what: {member, non-member, manager, anonymous} × {task, VC, storage, instance, logs} × each action.

The member belongs to the task's project; the non-member to no project; the manager is in the managers
group (pin, force start, sees everything) but no project. Objects a user may not see answer 404, manager
operations 403 to others, anything without credentials 401.
"""

from types import SimpleNamespace

import pytest
from django.utils import timezone

from tasks.states import Status
from tests.api.conftest import api_client, holding_task, world_task
from tests.factories import NodeFactory, VirtualClusterFactory

pytestmark = pytest.mark.django_db

ROLES = ("member", "non_member", "manager", "anonymous")


def create_body(scene):
    return {
        "name": "new", "project": scene.project, "image": "registry.example.com/llm/vllm:0.6.0",
        "virtual_cluster": scene.vc, "sku_count": 1, "container_port": 8000,
    }


# (object, action, method, url, body, (member, non-member, manager)); anonymous always answers 401.
GRID = [
    ("task", "list", "get", "/tasks/", None, (200, 200, 200)),
    ("task", "read", "get", "/tasks/{idle}/", None, (200, 404, 200)),
    ("task", "create", "post", "/tasks/", create_body, (201, 400, 400)),
    # A manager outside the project edits on behalf of the task's owner (their grants apply);
    # creating or copying makes a task of the manager's own, in a project they are not a member of.
    ("task", "update", "patch", "/tasks/{idle}/", {"description": "edited"}, (200, 404, 200)),
    ("task", "delete", "delete", "/tasks/{idle}/", None, (204, 404, 204)),
    ("task", "start", "post", "/tasks/{idle}/start/", None, (200, 404, 200)),
    ("task", "stop", "post", "/tasks/{running}/stop/", None, (200, 404, 200)),
    ("task", "pin", "post", "/tasks/{queued}/pin/", None, (403, 404, 200)),
    ("task", "unpin", "post", "/tasks/{pinned}/unpin/", None, (403, 404, 200)),
    ("task", "force start preview", "get", "/tasks/{pinned}/force-start/", None, (403, 404, 200)),
    ("task", "force start", "post", "/tasks/{pinned}/force-start/", None, (403, 404, 200)),
    ("task", "copy", "post", "/tasks/{idle}/copy/", {"name": "copied"}, (201, 404, 400)),
    ("task", "events", "get", "/tasks/{idle}/events/", None, (200, 404, 200)),
    ("virtual cluster", "list", "get", "/virtual-clusters/", None, (200, 200, 200)),
    ("virtual cluster", "create", "post", "/virtual-clusters/", {"name": "x"}, (405, 405, 405)),
    ("storage", "list", "get", "/storages/", None, (200, 200, 200)),
    ("storage", "create", "post", "/storages/", {"name": "x"}, (405, 405, 405)),
    ("instance", "list", "get", "/tasks/{running}/instances/", None, (200, 404, 200)),
    ("logs", "read", "get", "/instances/{instance}/logs/", None, (200, 404, 200)),
    ("logs", "download", "get", "/instances/{instance}/logs/?download=1", None, (200, 404, 200)),
    ("queue", "read", "get", "/queue/", None, (200, 200, 200)),
]

CASES = [
    pytest.param(row[:5], role, (*row[5], 401)[ROLES.index(role)], id=f"{row[0]}-{row[1]}-{role}")
    for row in GRID
    for role in ROLES
]


@pytest.fixture
def scene(world, people):
    """One task in each state the operations start from; the pinned one in a queue of its own."""
    quiet_vc = VirtualClusterFactory(name="quiet", users=[world.member])
    NodeFactory(virtual_cluster=quiet_vc, sku_capacity=8)
    running = holding_task(world)
    return SimpleNamespace(
        project=world.project.pk,
        vc=world.vc.pk,
        idle=world_task(world, name="idle").pk,
        running=running.pk,
        instance=running.instances.get().pk,
        queued=world_task(world, name="queued", status=Status.QUEUED, queued_at=timezone.now()).pk,
        pinned=world_task(
            world, name="pinned", virtual_cluster=quiet_vc, status=Status.QUEUED, pinned=True, queued_at=timezone.now()
        ).pk,
        clients={
            "member": api_client(people.member),
            "non_member": api_client(people.outsider),
            "manager": api_client(people.manager),
            "anonymous": api_client(),
        },
    )


@pytest.mark.parametrize("key, role, expected", CASES)
def test_grid(scene, key, role, expected):
    _object, _action, method, url, body = key
    if callable(body):
        body = body(scene)

    response = getattr(scene.clients[role], method)("/api/v1" + url.format(**vars(scene)), body, format="json")

    assert response.status_code == expected, getattr(response, "data", None)


@pytest.mark.parametrize(
    "url, field, seen",
    [
        ("/tasks/", "name", {"member": 4, "non_member": 0, "manager": 4}),
        ("/virtual-clusters/", "name", {"member": 2, "non_member": 0, "manager": 0}),
        ("/storages/", "name", {"member": 1, "non_member": 0, "manager": 0}),
        ("/projects/", "name", {"member": 1, "non_member": 0, "manager": 0}),
    ],
)
def test_lists_hold_only_what_each_user_may_see(scene, url, field, seen):
    for role, count in seen.items():
        assert scene.clients[role].get("/api/v1" + url).json()["count"] == count, role
