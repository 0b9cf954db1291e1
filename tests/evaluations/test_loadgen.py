"""The load generator against the real demo model server, whose delays are known.

The demo server sends the first token 200 ms after a request arrives and each next one 30 ms later,
so TTFT ≈ 200 ms, ITL ≈ TPOT ≈ 30 ms and E2E ≈ 200 + 7 × 30 = 410 ms for 8 tokens; measured figures may
only be later than that (network, scheduling), by a bounded amount.
"""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from evaluations import loadgen
from evaluations.metrics import summarize
from tests.demo_model.process import DemoModelProcess, free_port

pytestmark = pytest.mark.timeout(60)
SLACK_MS = 150  # what a busy two-core test machine may add (the lower bounds are exact)
BIAS_MS = 5  # the most the medians of a long run may sit above the delays (see the test)


def spec_for(server, **overrides):
    values = {
        "base_url": server.url, "endpoint_kind": "completions", "model": "demo-llm",
        "prompts": loadgen.BUILTIN_PROMPTS, "max_tokens": 8, "request_count": 12, "concurrency": 4,
        "request_rate": None, "timeout": 10.0,
    }
    values.update(overrides)
    return loadgen.LoadSpec(**values)


def assert_near(measured, expected, slack=SLACK_MS):
    assert expected - 5 <= measured <= expected + slack, (measured, expected)


@pytest.mark.parametrize("endpoint_kind", ["completions", "chat"])
def test_metrics_match_the_known_delays(demo_server, endpoint_kind):
    outcome = loadgen.run_load(spec_for(demo_server, endpoint_kind=endpoint_kind))
    result = summarize(outcome.records, outcome.duration)

    assert (result["completed"], result["failed"], outcome.stopped) == (12, 0, False)
    assert result["total_output_tokens"] == 12 * 8
    assert_near(result["ttft_ms"]["p50"], 200)
    assert_near(result["ttft_ms"]["mean"], 200)
    assert_near(result["itl_ms"]["p50"], 30, slack=15)
    assert_near(result["tpot_ms"]["mean"], 30, slack=15)
    assert_near(result["e2el_ms"]["p50"], 410)
    # 12 requests, 4 at a time: three waves of ~410 ms.
    assert 1.23 <= outcome.duration <= 1.23 + 1.0
    assert result["request_throughput"] == pytest.approx(12 / outcome.duration)
    assert result["output_throughput"] == pytest.approx(96 / outcome.duration)


def test_concurrency_bounds_requests_in_flight(demo_server):
    one_at_a_time = loadgen.run_load(spec_for(demo_server, request_count=3, concurrency=1, max_tokens=2))
    all_at_once = loadgen.run_load(spec_for(demo_server, request_count=3, concurrency=3, max_tokens=2))
    # 3 × (200 + 30) ms in a row, against one wave of 230 ms.
    assert one_at_a_time.duration >= 0.69
    assert all_at_once.duration < 0.6


def test_first_model_is_read_from_the_endpoint(demo_server):
    assert loadgen.first_model(demo_server.url) == "demo-llm"
    with pytest.raises(loadgen.EndpointError):
        loadgen.first_model(f"http://127.0.0.1:{free_port()}", timeout=2)


def test_failed_requests_are_counted_with_their_errors():
    with DemoModelProcess("--fail-every", "4") as server:
        outcome = loadgen.run_load(spec_for(server, request_count=12, concurrency=1))
    result = summarize(outcome.records, outcome.duration)
    assert (result["completed"], result["failed"]) == (9, 3)
    assert all(error.startswith("HTTP 500: The demo model failed") for error in result["errors"])
    assert result["total_output_tokens"] == 9 * 8


def test_requests_that_take_too_long_time_out():
    with DemoModelProcess("--first-token-delay", "2") as server:
        outcome = loadgen.run_load(spec_for(server, request_count=2, concurrency=2, timeout=0.3))
    assert [r.error for r in outcome.records] == ["timed out after 0.3 s"] * 2
    assert outcome.duration < 1.5


def test_unreachable_endpoint_fails_every_request(fast_server):
    unreachable = f"http://127.0.0.1:{free_port()}"
    outcome = loadgen.run_load(spec_for(fast_server, base_url=unreachable, request_count=3, concurrency=3))
    assert len(outcome.records) == 3
    assert all(not r.success and r.error.startswith("ConnectError") for r in outcome.records)


def test_stops_early_and_keeps_what_finished():
    progress = []

    def keep_going(done):
        progress.append(done)
        return server.requests_logged("/v1/completions") < 4

    with DemoModelProcess("--token-delay", "0.1") as server:
        spec = spec_for(server, request_count=40, concurrency=2, max_tokens=3)  # ~0.2 s each, 2 at a time
        outcome = loadgen.run_load(spec, keep_going=keep_going, check_every=0.05)
    assert outcome.stopped
    # Four requests had started, so at least two had finished; the run did not go on to the fortieth.
    assert 2 <= len(outcome.records) < 10 and all(r.success for r in outcome.records)
    assert outcome.duration < 40 / 2 * 0.2
    # keep_going was told how many had finished, as they finished.
    assert progress == sorted(progress) and progress[-1] <= len(outcome.records)


def test_a_stop_check_that_raises_stops_the_load_before_the_error_goes_on():
    import threading

    class DatabaseGone(Exception):
        pass

    def keep_going(done):
        raise DatabaseGone("the database is gone")

    with DemoModelProcess("--token-delay", "0.1") as server:
        spec = spec_for(server, request_count=40, concurrency=2, max_tokens=3)  # ~8 s if nothing stops it
        with pytest.raises(DatabaseGone):
            loadgen.run_load(spec, keep_going=keep_going, check_every=0.05)
        # The load's thread was stopped and joined before the error came out: nothing sends any more.
        assert not any(thread.name == "evaluation-load" for thread in threading.enumerate())
        assert server.requests_logged("/v1/completions") < 10


def test_request_rate_spreads_arrivals():
    offsets = loadgen.arrival_offsets(200, rate=50.0)
    assert offsets == loadgen.arrival_offsets(200, rate=50.0)  # seeded: runs repeat
    assert offsets[0] == 0.0 and offsets == sorted(offsets)
    assert 200 / 50.0 * 0.8 < offsets[-1] < 200 / 50.0 * 1.2
    assert loadgen.arrival_offsets(3, rate=None) == [0.0, 0.0, 0.0]


def test_request_rate_paces_the_run(fast_server):
    outcome = loadgen.run_load(spec_for(fast_server, request_count=10, concurrency=10, request_rate=20.0))
    expected_last_arrival = loadgen.arrival_offsets(10, rate=20.0)[-1]
    assert len(outcome.records) == 10
    assert expected_last_arrival <= outcome.duration < expected_last_arrival + 0.5


def sse(*payloads):
    lines = [": keep-alive ping", ""]
    for payload in payloads:
        lines += [f"data: {json.dumps(payload)}", ""]
    lines += ["data: [DONE]", ""]
    return "\n".join(lines).encode()


def run_against(handler, **overrides):
    spec = loadgen.LoadSpec(**{
        "base_url": "http://model.test", "endpoint_kind": "chat", "model": "m", "prompts": ("hi",),
        "max_tokens": 3, "request_count": 1, "concurrency": 1, "request_rate": None, "timeout": 5.0, **overrides,
    })

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await loadgen.send_request(client, spec, "hi")

    # A loop of its own on a thread of its own: Playwright's sync API may hold a running loop on this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, go()).result()


def test_without_usage_the_token_chunks_are_counted_and_role_chunks_are_not_tokens():
    def handler(request):
        body = json.loads(request.content)
        assert body["messages"] == [{"role": "user", "content": "hi"}] and body["stream"] is True
        chunks = [{"choices": [{"delta": {"role": "assistant"}}]}]
        chunks += [{"choices": [{"delta": {"content": f" t{i}"}}]} for i in range(3)]
        return httpx.Response(200, content=sse(*chunks), headers={"content-type": "text/event-stream"})

    record = run_against(handler)
    assert record.success and record.output_tokens == 3 and len(record.itl) == 2


def test_usage_wins_over_counted_chunks_and_stream_errors_fail_the_request():
    def with_usage(request):
        chunks = [{"choices": [{"text": " several tokens"}]}, {"choices": [], "usage": {"completion_tokens": 5}}]
        return httpx.Response(200, content=sse(*chunks))

    assert run_against(with_usage, endpoint_kind="completions").output_tokens == 5

    def with_error(request):
        return httpx.Response(200, content=sse({"error": {"message": "out of memory"}}))

    record = run_against(with_error)
    assert not record.success and "out of memory" in record.error

    def empty(request):
        return httpx.Response(200, content=sse())

    assert run_against(empty).error == "the response carried no tokens"


def test_many_connections_at_once_are_all_served(fast_server):
    # With the stdlib's listen backlog of 5, about one in ten of these failed (connections reset).
    outcome = loadgen.run_load(spec_for(fast_server, request_count=128, concurrency=64, max_tokens=2))
    result = summarize(outcome.records, outcome.duration)
    assert (result["completed"], result["failed"]) == (128, 0), result["errors"]


def test_ttft_and_e2e_carry_no_bias_of_their_own(demo_server):
    """The issue's run (40 requests × 16 tokens, 4 at a time): the medians sit just above the server's delays.

    Before, every request paid a new connection and a new server thread (TTFT p50 ≈ 206–213 ms, E2E ≈ 660–667
    here). On an idle machine both medians are within 2 ms; this shared two-core machine (load ≈ 4) adds up to
    3 ms of scheduling, hence the bound.
    """
    outcome = loadgen.run_load(spec_for(demo_server, max_tokens=16, request_count=40))
    result = summarize(outcome.records, outcome.duration)

    assert result["completed"] == 40
    assert 200 <= result["ttft_ms"]["p50"] <= 200 + BIAS_MS
    assert 650 <= result["e2el_ms"]["p50"] <= 650 + BIAS_MS


def test_a_request_leaves_its_connection_open_for_the_next(demo_server):
    """A stream read to its end (past ``[DONE]``) gives its connection back to the pool: no setup per request."""

    async def connections_after_each():
        counts = []
        async with httpx.AsyncClient() as client:
            for _ in range(3):
                record = await loadgen.send_request(client, spec_for(demo_server, max_tokens=2), "hello")
                assert record.success
                counts.append([c.info() for c in client._transport._pool.connections])
        return counts

    with ThreadPoolExecutor(1) as thread:  # a loop of its own: the browser tests' one may run on this thread
        counts = thread.submit(asyncio.run, connections_after_each()).result()
    assert [len(c) for c in counts] == [1, 1, 1]
    assert "Request Count: 3" in counts[-1][0]
