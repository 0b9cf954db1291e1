"""Fixtures for the runtime tests: placed tasks (instance rows as the scheduler writes them) and a Kubernetes API mock."""

import asyncio
import threading

import pytest

from tasks.models import TaskInstance
from tasks.states import Status
from tests.factories import current_run


def place(task, nodes, *, status=Status.DEPLOYING, endpoint_port=None):
    """Give ``task`` instance rows on ``nodes`` (one per replica) the way a placement does, and a holding status."""
    vc = task.virtual_cluster
    task.status = status
    task.endpoint_port = endpoint_port
    task.save(update_fields=["status", "endpoint_port"])
    used = {}
    for index, node in zip(range(task.replicas), nodes, strict=False):
        first = used.get(node.pk, 0)
        gpus = task.sku_count * vc.sku_gpus
        TaskInstance.objects.create(
            task=task,
            run=current_run(task),
            index=index,
            node=node,
            node_name=node.name,
            gpu_type=node.gpu_type,
            sku_count=task.sku_count,
            gpu_count=gpus,
            gpu_indices=list(range(first, first + gpus)),
        )
        used[node.pk] = first + gpus
    return task


@pytest.fixture(autouse=True)
def english():
    """Sentences are asserted in their English source form (Chinese is the site's default)."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def placed(world):
    """``placed(**task_fields)``: a deploying task of ``world`` with its instances on world's machines."""
    from tests.factories import TaskFactory

    def make(*, nodes=None, endpoint_port=None, status=Status.DEPLOYING, **fields):
        fields.setdefault("project", world.project)
        fields.setdefault("virtual_cluster", world.vc)
        fields.setdefault("owner", world.member)
        task = TaskFactory(**fields)
        return place(
            task,
            nodes or [world.nodes[i % len(world.nodes)] for i in range(task.replicas)],
            status=status,
            endpoint_port=endpoint_port,
        )

    return make


class KubeMock:
    """kmock's Kubernetes emulator served from a thread, for the synchronous ``kubernetes`` client.

    ``call(fn)`` runs ``fn(emulator)`` on the mock's event loop (reactions and objects are
    changed there, never from the test's thread); ``url`` is the API server's address.
    """

    def __init__(self):
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.url = None

    def _run(self):
        import kmock

        self.loop = asyncio.new_event_loop()

        async def serve():
            async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
                for resource in ("v1/pods", "v1/services", "v1/secrets", "v1/events", "v1/nodes"):
                    emulator.resources[resource] = {}
                self.emulator, self.url = emulator, str(server.url).rstrip("/")
                self._stop = asyncio.Event()
                self._ready.set()
                await self._stop.wait()

        self.loop.run_until_complete(serve())

    def start(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Kubernetes API mock did not start")

    def stop(self):
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def call(self, fn):
        async def run():
            return fn(self.emulator)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    # Shortcuts over the emulator's stored objects.
    def objects(self, plural, namespace="deploy-portal"):
        import kmock

        def read(emulator):
            return {
                name: obj.raw
                for (resource, ns, name), obj in emulator.objects.items()
                if resource == kmock.resource(f"v1/{plural}") and ns == namespace and not obj.deleted
            }

        return self.call(read)

    def put(self, plural, name, body, namespace="deploy-portal"):
        import kmock

        def write(emulator):
            emulator.objects[kmock.resource(f"v1/{plural}"), namespace, name] = body

        self.call(write)

    def patch(self, plural, name, changes, namespace="deploy-portal"):
        import kmock

        self.call(lambda emulator: emulator.objects[kmock.resource(f"v1/{plural}"), namespace, name].patch(changes))

    def requests(self, method=None, plural=None):
        def read(emulator):
            return [
                request
                for request in emulator
                if (method is None or request.method.value.lower() == method)
                and (plural is None or (request.resource is not None and request.resource.plural == plural))
            ]

        return self.call(read)


@pytest.fixture
def kube():
    mock = KubeMock()
    mock.start()
    yield mock
    mock.stop()


@pytest.fixture
def kube_runtime(kube, settings):
    """A KubernetesRuntime on the mock: short timeouts and back-off, one image pull secret."""
    from kubernetes import client

    from scheduler import runtimes
    from scheduler.runtimes.kubernetes.runtime import KubernetesRuntime

    configuration = client.Configuration()
    configuration.host = kube.url
    # No retries inside urllib3: the tests show the runtime's own retrying.
    configuration.retries = False
    settings.KUBERNETES_NAMESPACE = "deploy-portal"
    settings.DEPLOY_RUNTIME = "kubernetes"
    runtime = KubernetesRuntime(
        client.ApiClient(configuration),
        namespace="deploy-portal",
        image_pull_secrets=["regcred"],
        request_timeout=0.5,
    )
    # get_runtime() answers this one while the test runs.
    runtimes._runtimes[("kubernetes", "deploy-portal")] = runtime
    yield runtime
    runtimes._runtimes.pop(("kubernetes", "deploy-portal"), None)
