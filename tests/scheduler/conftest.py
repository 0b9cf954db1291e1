"""Fixtures for the scheduler tests: small clusters, and a record of the Celery work sent after commit."""

import pytest
from django.utils import translation

from clusters.models import QueuePolicy
from tests.factories import ManagerFactory, NodeFactory, TaskFactory, UserFactory, VirtualClusterFactory


@pytest.fixture(autouse=True)
def english():
    """Reasons and refusals are asserted in their English source text (Chinese is the site's default)."""
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Users are made by the dozen here; their password hashing is not what these tests are about."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def sent(monkeypatch):
    """(Celery task name, argument) for every message the services send; sent only once the transaction commits."""
    from scheduler import tasks

    messages = []
    for name in ("deploy_task", "teardown_task"):
        monkeypatch.setattr(getattr(tasks, name), "delay", lambda task_id, run_id, name=name: messages.append((name, task_id)))
    return messages


class Cluster:
    """One VC with named machines, and a helper to make tasks in it."""

    def __init__(self, *capacities, policy=QueuePolicy.STRICT_FIFO, sku_gpus=1, prefix="n"):
        self.owner = UserFactory()
        self.manager = ManagerFactory()
        self.vc = VirtualClusterFactory(queue_policy=policy, sku_gpus=sku_gpus)
        self.nodes = [
            NodeFactory(virtual_cluster=self.vc, name=f"{prefix}{self.vc.pk}-{i}", sku_capacity=cap)
            for i, cap in enumerate(capacities)
        ]

    def task(self, sku_count=1, replicas=1, **fields):
        fields.setdefault("owner", self.owner)
        return TaskFactory(virtual_cluster=self.vc, sku_count=sku_count, replicas=replicas, **fields)


@pytest.fixture
def make_cluster(db):
    return Cluster
