"""The endpoint gateway through real HTTP, in front of real demo model servers: keys and their scopes, the
answers of a task that does not run, balancing, a replica that dies, streaming token by token, usage metered,
and the official ``openai`` client calling a task through it."""

import json
import time
from datetime import timedelta

import httpx
import openai
import pytest
from django.utils import timezone

from endpoints.keys import key_digest
from endpoints.models import ApiKey, UsageHour
from endpoints.services import api_key_revoke
from scheduler.services import task_start
from tasks.models import Task, TaskInstance
from tasks.states import Status
from tests.factories import ManagerFactory, ProjectFactory, TaskFactory, UserFactory

from tests.live import wait_until

from .conftest import bearer, client, key_of, running_on

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
CHAT = {"model": "demo-llm", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


def test_a_key_calls_its_users_task_and_scopes_and_revocation_are_kept(world, gateway_server, demo_servers):
    (server,) = demo_servers(1)
    task = running_on(world, [server])
    other_project = ProjectFactory(name="vision", members=[world.member])
    running_on(world, [server], project=other_project, name="clip")
    key = key_of(world.member)
    scoped = key_of(world.member, project=world.project)
    stranger = key_of(UserFactory(username="mallory"))
    gateway_server.refresh()
    with client(gateway_server) as http:
        assert http.get("/llm/qwen/v1/models", headers=bearer(key)).json()["data"][0]["id"] == "demo-llm"
        assert http.get(f"/llm/{task.pk}/v1/models", headers=bearer(key)).status_code == 200  # by id too
        assert http.get("/vision/clip/v1/models", headers=bearer(key)).status_code == 200
        # A key scoped to project llm cannot call project vision's task: as if it did not exist.
        refused = http.get("/vision/clip/v1/models", headers=bearer(scoped))
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "task_not_found"
        assert http.get("/llm/qwen/v1/models", headers=bearer(scoped)).status_code == 200
        # A user outside the project: 404; no key, a made-up key: 401, whether the task exists or not.
        assert http.get("/llm/qwen/v1/models", headers=bearer(stranger)).status_code == 404
        for path in ("/llm/qwen/v1/models", "/llm/nothing/v1/models"):
            missing = http.get(path)
            assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
            assert missing.json()["error"]["code"] == "missing_api_key"
        assert http.get("/llm/qwen/v1/models", headers=bearer("dpk_00000000_made-up")).status_code == 401
        # Revoked: refused once the gateway read the keys again; the key itself never reaches the replica.
        api_key_revoke(api_key=ApiKey.objects.get(digest=key_digest(key)), user=world.member)
        gateway_server.refresh()
        revoked = http.get("/llm/qwen/v1/models", headers=bearer(key))
        assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "invalid_api_key"


def test_an_expired_key_and_a_task_scope_are_refused_outside_them(world, gateway_server, demo_servers):
    (server,) = demo_servers(1)
    task = running_on(world, [server])
    twin = running_on(world, [server], name="qwen-b")
    only_task = key_of(world.member, tasks=[task])
    soon = key_of(world.member, expires_at=timezone.now() + timedelta(seconds=1))
    gateway_server.refresh()
    with client(gateway_server) as http:
        assert http.get("/llm/qwen/v1/models", headers=bearer(only_task)).status_code == 200
        assert http.get(f"/llm/{twin.name}/v1/models", headers=bearer(only_task)).status_code == 404
        assert http.get("/llm/qwen/v1/models", headers=bearer(soon)).status_code == 200
        time.sleep(1.1)  # the expiry itself, not a wait for something to happen
        assert http.get("/llm/qwen/v1/models", headers=bearer(soon)).status_code == 401


def test_a_public_task_answers_without_a_key(world, gateway_server, demo_servers):
    (server,) = demo_servers(1)
    running_on(world, [server], public_endpoint=True)
    gateway_server.refresh()
    with client(gateway_server) as http:
        assert http.get("/llm/qwen/v1/models").status_code == 200


@pytest.mark.parametrize("status", [Status.QUEUED, Status.DEPLOYING, Status.STOPPED])
def test_a_task_that_does_not_run_answers_503_with_its_state_and_why(world, gateway_server, status):
    if status == Status.QUEUED:
        for _ in world.nodes:  # every SKU held
            blocker = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member, sku_count=8)
            task_start(task=blocker, user=world.member)
        task = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member, name="qwen", sku_count=4)
        task_start(task=task, user=world.member)
        task.refresh_from_db()
        assert task.status == Status.QUEUED
    else:
        task = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member, name="qwen",
                           status=status)
    key = key_of(world.member)
    gateway_server.refresh()
    with client(gateway_server) as http:
        answer = http.get("/llm/qwen/v1/models", headers={**bearer(key), "Accept-Language": "en"})
    body = answer.json()
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert body["task"]["id"] == task.pk and body["task"]["status"] == status
    assert body["error"]["type"] == "task_not_running"
    if status == Status.QUEUED:
        assert body["task"]["queue_position"] == 1
        assert body["error"]["message"].startswith("The task is queued, position 1: ")
        assert "SKU" in body["task"]["reason"]
    elif status == Status.DEPLOYING:
        assert "deploying" in body["error"]["message"]


def test_two_tasks_of_one_name_are_told_apart_by_id(world, gateway_server, demo_servers):
    first = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member, name="twin")
    second = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member, name="twin")
    key = key_of(world.member)
    gateway_server.refresh()
    with client(gateway_server) as http:
        answer = http.get("/llm/twin/v1/models", headers=bearer(key))
        assert answer.status_code == 409 and answer.json()["tasks"] == [first.pk, second.pk]
        assert http.get(f"/llm/{second.pk}/v1/models", headers=bearer(key)).json()["task"]["id"] == second.pk


def test_three_replicas_share_the_requests_and_a_killed_one_leaves_the_pool_without_a_failed_request(
    world, gateway_server, demo_servers,
):
    servers = demo_servers(3)
    running_on(world, servers, public_endpoint=True)
    gateway_server.refresh()
    with client(gateway_server) as http:
        for _ in range(30):
            assert http.post("/llm/qwen/v1/chat/completions", json=CHAT).status_code == 200
        wait_until(lambda: sum(s.requests_logged("/v1/chat/completions") for s in servers) == 30, timeout=10)
        served = [server.requests_logged("/v1/chat/completions") for server in servers]
        assert all(count >= 5 for count in served), served  # least outstanding, ties in turn: about 10 each
        servers[1].process.kill()  # dies without a word: the gateway finds out on its next connection
        servers[1].process.wait()
        answers = [http.post("/llm/qwen/v1/chat/completions", json=CHAT).status_code for _ in range(30)]
    assert answers == [200] * 30  # the first refused connection was retried on another replica
    assert gateway_server.gateway.balancer.ejected  # and the dead one was left out


def test_a_stream_is_passed_on_token_by_token_and_its_usage_counted(world, gateway_server, demo_servers):
    (server,) = demo_servers(1, "--token-delay", "0.2", "--first-token-delay", "0.05")
    task = running_on(world, [server])
    key = key_of(world.member)
    gateway_server.refresh()
    body = {**CHAT, "max_tokens": 5, "stream": True, "stream_options": {"include_usage": True}}
    arrivals = []
    with client(gateway_server) as http:
        started = time.perf_counter()
        with http.stream("POST", "/llm/qwen/v1/chat/completions", json=body, headers=bearer(key)) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            for line in answer.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"]:
                    arrivals.append(time.perf_counter() - started)
        plain = http.post("/llm/qwen/v1/chat/completions", json={**CHAT, "max_tokens": 3}, headers=bearer(key))
        assert plain.status_code == 200
    # Each token arrives when the model sends it (0.2 s apart), not all at the end: nothing is buffered.
    assert len(arrivals) == 5
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    assert all(gap > 0.1 for gap in gaps), gaps
    # The count is taken once an answer is over, just after its last byte left: flush until both are in.
    wait_until(lambda: gateway_server.flush() or UsageHour.objects.filter(task=task, requests=2).exists(), timeout=5)
    usage = UsageHour.objects.get(task=task)
    assert (usage.requests, usage.errors) == (2, 0)
    assert usage.completion_tokens == 5 + 3 and usage.prompt_tokens > 0
    assert usage.key.last_used_at is not None and usage.latency_ms_max >= 800


def test_a_client_that_goes_away_closes_the_upstream_request(world, gateway_server, demo_servers):
    (server,) = demo_servers(1, "--token-delay", "0.2")
    running_on(world, [server], public_endpoint=True)
    gateway_server.refresh()
    body = {**CHAT, "max_tokens": 50, "stream": True}
    with client(gateway_server) as http:
        with http.stream("POST", "/llm/qwen/v1/chat/completions", json=body) as answer:
            next(answer.iter_lines())
    # The replica's outstanding count is given back once the client is gone, long before the 10 s answer ends.
    deadline = time.monotonic() + 3
    while gateway_server.gateway.balancer.outstanding and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway_server.gateway.balancer.outstanding == {}


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(world, gateway_server, demo_servers):
    (server,) = demo_servers(1)
    running_on(world, [server])
    key = key_of(world.member, rate_limit=3)
    gateway_server.refresh()
    with client(gateway_server) as http:
        codes = [http.get("/llm/qwen/v1/models", headers=bearer(key)) for _ in range(4)]
    assert [c.status_code for c in codes] == [200, 200, 200, 429]
    assert int(codes[-1].headers["retry-after"]) >= 1 and codes[-1].json()["error"]["type"] == "rate_limit_exceeded"


def test_the_openai_client_chats_completes_and_streams_through_the_gateway(world, gateway_server, demo_servers):
    running_on(world, demo_servers(2))
    key = key_of(ManagerFactory(username="boss"))  # a manager's key: every task
    gateway_server.refresh()
    with openai.OpenAI(base_url=f"{gateway_server.url}/llm/qwen/v1", api_key=key, max_retries=0) as ai:
        chat = ai.chat.completions.create(model="demo-llm", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        assert chat.usage.completion_tokens == 3
        completion = ai.completions.create(model="demo-llm", prompt="once upon", max_tokens=2)
        assert completion.usage.completion_tokens == 2
        chunks = list(ai.chat.completions.create(
            model="demo-llm", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True,
            stream_options={"include_usage": True},
        ))
        assert len([c for c in chunks if c.choices]) == 4 and chunks[-1].usage.completion_tokens == 4
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{gateway_server.url}/llm/qwen/v1", api_key="dpk_bad", max_retries=0).models.list()


def test_a_replica_that_is_no_longer_ready_leaves_the_routes(world, gateway_server, demo_servers):
    servers = demo_servers(2)
    task = running_on(world, servers, public_endpoint=True)
    gateway_server.refresh()
    assert len(gateway_server.gateway.world.routes[task.pk].upstreams) == 2
    TaskInstance.objects.filter(task=task, index=1).update(status="starting")
    gateway_server.refresh()
    assert gateway_server.gateway.world.routes[task.pk].upstreams == (f"127.0.0.1:{servers[0].port}",)
    Task.objects.filter(pk=task.pk).update(status=Status.STOPPED)
    gateway_server.refresh()
    assert task.pk not in gateway_server.gateway.world.routes
    with httpx.Client(base_url=gateway_server.url) as http:
        assert http.get("/llm/qwen/v1/models").status_code == 503


def test_the_replica_gets_the_request_but_not_the_key_nor_the_portals_cookies(world, gateway_server):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self):
            headers = {name.lower(): value for name, value in self.headers.items()}
            seen.append((self.path, headers, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        task = running_on(world, [])
        TaskInstance.objects.create(
            task=task, run=task.current_run, index=0, node=world.nodes[0], node_name=world.nodes[0].name,
            gpu_type="NVIDIA-H100", sku_count=1, gpu_count=1, status="ready", address=f"127.0.0.1:{upstream.server_port}",
        )
        key = key_of(world.member)
        gateway_server.refresh()
        with client(gateway_server) as http:
            answer = http.post("/llm/qwen/v1/embeddings?x=%2F1", content=b'{"input": "hi"}',
                               headers={**bearer(key), "Cookie": "sessionid=portal-session", "X-Trace": "t1"})
        assert answer.status_code == 200 and answer.json() == {}
    finally:
        upstream.shutdown()
    ((path, headers, body),) = seen
    assert path == "/v1/embeddings?x=%2F1" and body == b'{"input": "hi"}' and headers["x-trace"] == "t1"
    assert "authorization" not in headers and "cookie" not in headers
