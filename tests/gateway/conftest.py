"""A real gateway (uvicorn, on a loopback port, in a thread of the test process, reading the test database) in
front of real demo model servers; tasks set up as the runtime would leave them running."""

import asyncio
import threading
import time

import httpx
import pytest
import uvicorn

from deploy_portal.gateway.app import make_app
from endpoints.services import api_key_create
from tasks.models import InstanceStatus, TaskInstance
from tasks.states import Status
from tests.demo_model.process import DemoModelProcess, free_port
from tests.factories import TaskFactory, current_run


class GatewayServer:
    def __init__(self, **options):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = make_app(**options)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, loop="asyncio", http="h11",
                                lifespan="on", log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def gateway(self):
        return self.app.state.gateway

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def refresh(self):
        """Read routes and keys now (the timer does it every refresh_seconds)."""
        future = asyncio.run_coroutine_threadsafe(self.gateway.world.refresh(), self._loop())
        future.result(timeout=10)

    def flush(self):
        future = asyncio.run_coroutine_threadsafe(self.gateway.meter.flush(), self._loop())
        future.result(timeout=10)

    def _loop(self):
        for task in self.gateway.tasks:
            return task.get_loop()
        raise RuntimeError("the gateway has not started its timers")


@pytest.fixture
def gateway_server(transactional_db, settings):
    settings.GATEWAY_URL = "http://gateway.example"
    with GatewayServer(refresh_seconds=0.2, flush_seconds=3600) as server:
        yield server


@pytest.fixture
def demo_servers():
    """Start demo model servers on demand: ``demo_servers(3, "--token-delay", "0.01")``; all stopped after."""
    started = []

    def start(count=1, *args):
        servers = [DemoModelProcess(*args).__enter__() for _ in range(count)]
        started.extend(servers)
        return servers

    yield start
    for server in started:
        server.__exit__(None, None, None)


def running_on(world, servers, **fields):
    """A running task of ``world`` whose current run has one ready instance per demo server."""
    fields = {"project": world.project, "virtual_cluster": world.vc, "owner": world.member, "status": Status.RUNNING,
              "name": "qwen", **fields}
    task = TaskFactory(**fields)
    run = current_run(task)
    for index, server in enumerate(servers):
        node = world.nodes[index % len(world.nodes)]
        TaskInstance.objects.create(
            task=task, run=run, index=index, node=node, node_name=node.name, gpu_type=node.gpu_type, sku_count=1,
            gpu_count=1, gpu_indices=[index], status=InstanceStatus.READY, address=f"127.0.0.1:{server.port}",
        )
    return task


def key_of(user, **scope):
    return api_key_create(user=user, name="test key", **scope)[1]


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def client(server):
    return httpx.Client(base_url=server.url, timeout=30)
