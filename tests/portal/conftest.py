"""Fixtures of the portal's tests: a logged-in client, the create form's POST data, and a browser."""

import pytest
from django.test import Client

from tests.browser import log_in  # noqa: F401 - kept importable from here
from tests.factories import PASSWORD
from tests.live import live_stack, live_worker  # noqa: F401 - the live stack's fixtures, for the browser tests


@pytest.fixture
def member_client(client, world):
    """The world's member, logged in, reading the portal in English (messages are asserted in words)."""
    client.cookies["django_language"] = "en"
    assert client.login(username=world.member.username, password=PASSWORD)
    return client


@pytest.fixture
def manager_client(world, manager):
    """A manager (the managers group: pin, force start, see everything), in a client of their own."""
    client = Client()
    client.cookies["django_language"] = "en"
    assert client.login(username=manager.username, password=PASSWORD)
    return client


def form_data(world, **overrides):
    """What the create form posts for a valid task in ``world``; ``None`` drops a key."""
    data = {
        "name": "qwen-7b",
        "project": str(world.project.pk),
        "task_type": "inference",
        "image": "registry.example.com/llm/vllm:0.6.0",
        "virtual_cluster": str(world.vc.pk),
        "sku_count": "2",
        "replicas": "1",
        "expose_port": "on",
        "container_port": "8000",
        "external_port": "",
        "description": "",
        "env-0-name": "SHM_SIZE",
        "env-0-value": "60G",
        f"mounts-{world.storage.pk}": "on",
        f"mounts-{world.storage.pk}-path": "/models",
        "command": "",
        "args": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}
