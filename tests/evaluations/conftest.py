import pytest

from tasks.states import Status
from tests.demo_model.process import DemoModelProcess
from tests.factories import TaskFactory


def running_task(world, *, port, **fields):
    """A task of ``world`` that is running with its endpoint on ``port`` (set up directly, as a runtime would)."""
    defaults = {
        "name": "demo", "project": world.project, "virtual_cluster": world.vc, "owner": world.member,
        "status": Status.RUNNING, "endpoint_port": port, "image": "registry.example.com/llm/demo:1",
    }
    return TaskFactory(**{**defaults, **fields})


@pytest.fixture
def enqueued(monkeypatch):
    """The ids handed to Celery."""
    from evaluations import tasks

    sent = []
    monkeypatch.setattr(tasks.run_evaluation, "delay", sent.append)
    return sent


@pytest.fixture(scope="module")
def demo_server():
    """A demo model with known timings: first token after 200 ms, then one every 30 ms."""
    with DemoModelProcess("--first-token-delay", "0.2", "--token-delay", "0.03") as server:
        yield server


@pytest.fixture(scope="module")
def fast_server():
    """A demo model without delays."""
    with DemoModelProcess() as server:
        yield server


@pytest.fixture(autouse=True)
def english():
    """Assertions read the English source strings (the default language is Chinese)."""
    from django.utils import translation

    with translation.override("en"):
        yield
