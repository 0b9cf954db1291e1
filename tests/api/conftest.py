"""Fixtures of the API's tests: clients for each kind of user, and tasks in the states the operations need."""

from types import SimpleNamespace

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tasks.models import InstanceStatus, TaskInstance
from tasks.states import Status
from tests.factories import ManagerFactory, TaskFactory, UserFactory, current_run


def api_client(user=None):
    """A client reading English; authenticated with ``user``'s token when given."""
    from rest_framework.authtoken.models import Token

    client = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def holding_task(
    world, *, status=Status.RUNNING, name="serving", log="line 1\nline 2\nline 3\n", node=None, **fields
):
    """A task holding its SKUs on one machine (the world's first), with one instance whose log is archived."""
    fields.setdefault("endpoint_port", 30080)
    fields.setdefault("started_at", timezone.now())
    task = world_task(world, name=name, status=status, **fields)
    node = node or world.nodes[0]
    TaskInstance.objects.create(
        task=task, run=current_run(task), index=0, node=node, node_name=node.name, gpu_type=node.gpu_type, sku_count=task.sku_count,
        gpu_count=task.sku_count, gpu_indices=[0], status=InstanceStatus.READY, log_archive=log, log_archived=True,
    )
    return task


def world_task(world, **fields):
    """A task of the world's project on its VC, owned by its member unless told otherwise."""
    fields = {"project": world.project, "virtual_cluster": world.vc, "owner": world.member, **fields}
    return TaskFactory(**fields)


@pytest.fixture
def people(world):
    """The four kinds of caller: the project's member, a user of no project, a manager, and nobody."""
    outsider = UserFactory(username="mallory")
    manager = ManagerFactory(username="boss")
    return SimpleNamespace(member=world.member, outsider=outsider, manager=manager)


@pytest.fixture
def member_api(world):
    return api_client(world.member)


@pytest.fixture
def manager_api(people):
    return api_client(people.manager)


@pytest.fixture
def running_task(world):
    return holding_task(world)


@pytest.fixture
def idle_task(world):
    return world_task(world, name="idle", status=Status.NOT_DEPLOYED)
