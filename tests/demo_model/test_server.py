"""The demo model server, run as a real process and spoken to over HTTP."""

import json
import time

import httpx
import pytest

from .process import DemoModelProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server():
    with DemoModelProcess("--model", "tiny-llm") as process:
        yield process


def sse_events(response):
    """The JSON payloads of an SSE response, then the literal "[DONE]"."""
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_health_and_models(server):
    assert httpx.get(f"{server.url}/health").status_code == 200
    models = httpx.get(f"{server.url}/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["tiny-llm"]


def test_completion_is_deterministic_and_exactly_max_tokens(server):
    def complete(prompt):
        body = {"model": "tiny-llm", "prompt": prompt, "max_tokens": 7}
        return httpx.post(f"{server.url}/v1/completions", json=body).json()

    first, again, other = complete("Tell me a story"), complete("Tell me a story"), complete("Something else")
    assert first["choices"][0]["text"] == again["choices"][0]["text"]
    assert first["choices"][0]["text"] != other["choices"][0]["text"]
    assert len(first["choices"][0]["text"].split()) == 7
    assert first["usage"] == {"prompt_tokens": 4, "completion_tokens": 7, "total_tokens": 11}


def test_default_max_tokens_is_16(server):
    answer = httpx.post(f"{server.url}/v1/completions", json={"prompt": "hello"}).json()
    assert answer["usage"]["completion_tokens"] == 16


def test_streamed_completion_matches_the_full_one_and_ends_with_usage(server):
    body = {"model": "tiny-llm", "prompt": "stream me", "max_tokens": 5}
    full = httpx.post(f"{server.url}/v1/completions", json=body).json()
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=stream_body) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 5
    token_chunks = events[:-2]
    assert len(token_chunks) == 5
    assert "".join(c["choices"][0]["text"] for c in token_chunks) == full["choices"][0]["text"]
    assert [c["choices"][0]["finish_reason"] for c in token_chunks] == [None] * 4 + ["length"]


def test_stream_without_include_usage_has_no_usage_chunk(server):
    body = {"prompt": "x", "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body) as response:
        events = sse_events(response)
    assert len(events) == 4 and all("usage" not in e for e in events[:-1])


def test_chat_stream_carries_role_on_first_delta(server):
    body = {"messages": [{"role": "user", "content": "hi there"}], "max_tokens": 4, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        events = sse_events(response)
    deltas = [e["choices"][0]["delta"] for e in events[:4]]
    assert deltas[0]["role"] == "assistant" and all("role" not in d for d in deltas[1:])
    assert all(e["object"] == "chat.completion.chunk" for e in events[:5])
    full = httpx.post(f"{server.url}/v1/chat/completions", json={**body, "stream": False, "stream_options": None})
    assert full.json()["choices"][0]["message"]["content"] == "".join(d["content"] for d in deltas)


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/completions", {"prompt": "x", "model": "other"}, 404, "model"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
        ("/v1/completions", {"max_tokens": 3}, 400, "prompt"),
        ("/v1/chat/completions", {"messages": []}, 400, "messages"),
    ],
)
def test_bad_requests_get_openai_errors(server, path, body, status, param):
    response = httpx.post(f"{server.url}{path}", json=body)
    assert response.status_code == status
    assert response.json()["error"]["param"] == param


def test_invalid_json_and_unknown_route(server):
    response = httpx.post(f"{server.url}/v1/completions", content=b"{not json")
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]
    assert httpx.get(f"{server.url}/nope").status_code == 404


def test_each_request_logs_one_line(server):
    httpx.get(f"{server.url}/v1/models?probe=logline")
    server.wait_for_line(lambda line: '"GET /v1/models?probe=logline HTTP/1.1" 200' in line)


def test_token_timing_follows_the_delays():
    with DemoModelProcess("--first-token-delay", "0.3", "--token-delay", "0.05") as server:
        body = {"prompt": "timing", "max_tokens": 6, "stream": True}
        arrivals = []
        started = time.perf_counter()
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    arrivals.append(time.perf_counter() - started)
    assert len(arrivals) == 6
    # Token i is due 0.3 + 0.05 i s after the request: never earlier, and not much later on a busy machine
    # (each is scheduled against the request's start, so one late token does not delay the next ones).
    for index, arrived in enumerate(arrivals):
        due = 0.3 + index * 0.05
        assert due <= arrived < due + 0.25, (index, arrivals)
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:], strict=False))
    assert 0.03 < gaps[len(gaps) // 2] < 0.08, gaps


def test_fail_every_answers_every_nth_completion_with_500():
    with DemoModelProcess("--fail-every", "3") as server:
        statuses = []
        for index in range(6):
            path = "/v1/chat/completions" if index % 2 else "/v1/completions"
            body = {"prompt": "p", "messages": [{"role": "user", "content": "p"}], "max_tokens": 2}
            response = httpx.post(f"{server.url}{path}", json=body)
            statuses.append(response.status_code)
            if response.status_code == 500:
                error = response.json()["error"]
                assert error["code"] == 500 and "--fail-every" in error["message"]
        # /v1/models and /health do not count.
        httpx.get(f"{server.url}/v1/models")
    assert statuses == [200, 200, 500, 200, 200, 500]


def test_environment_configures_port_and_behaviour():
    env = {"DEMO_FAIL_EVERY": "1", "DEMO_FIRST_TOKEN_DELAY": "0.2"}
    with DemoModelProcess(env=env, port_from_env=True) as server:
        assert server.wait_for_line(lambda line: line.startswith("serving")).endswith(f":{server.port}")
        assert httpx.post(f"{server.url}/v1/completions", json={"prompt": "p"}).status_code == 500
    with DemoModelProcess(env={"DEMO_FIRST_TOKEN_DELAY": "0.25"}) as server:
        started = time.perf_counter()
        httpx.post(f"{server.url}/v1/completions", json={"prompt": "p", "max_tokens": 1})
        assert time.perf_counter() - started >= 0.25


def test_sigterm_shuts_down_cleanly():
    server = DemoModelProcess()
    with server:
        assert httpx.get(f"{server.url}/health").status_code == 200
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 3
    server.wait_for_line(lambda line: line == "demo model stopped")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health")
