"""The load generator: streaming requests to an OpenAI-compatible endpoint, measured one by one.

Plain I/O, no database: ``run_load`` drives an asyncio event loop on a thread of its own and asks the
caller's ``keep_going`` (on the caller's thread, so it may use the database) whether to go on.
"""

import asyncio
import contextlib
import json
import random
import threading
import time
from dataclasses import dataclass

import httpx

from .metrics import RequestRecord

BUILTIN_PROMPTS = (
    "Explain what a GPU does in one paragraph.",
    "Write a short poem about a mountain lake at dawn.",
    "List three tips for writing readable Python code.",
    "Summarize the plot of a detective story in four sentences.",
    "What are the trade-offs between latency and throughput when serving a model?",
    "Translate 'good morning, how are you?' into French and Spanish.",
    "Describe how a hash table works to a new programmer.",
    "Give a recipe for a simple tomato soup.",
)
ERROR_TEXT_LIMIT = 300


@dataclass(frozen=True)
class LoadSpec:
    """What to send: ``request_count`` requests, at most ``concurrency`` at once, optionally arriving at
    ``request_rate`` per second on average (a seeded Poisson process, so runs repeat)."""

    base_url: str
    endpoint_kind: str  # "completions" or "chat"
    model: str
    prompts: tuple[str, ...]
    max_tokens: int
    request_count: int
    concurrency: int
    request_rate: float | None
    timeout: float


@dataclass(frozen=True)
class LoadResult:
    records: list[RequestRecord]
    duration: float
    stopped: bool  # stopped early because keep_going() said so


class EndpointError(Exception):
    """The endpoint could not be asked what it serves."""


def model_ids(base_url, *, timeout=10.0) -> list[str]:
    """The ids ``GET /v1/models`` lists, in its order; EndpointError if there is no answer or it is not a list."""
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/v1/models", timeout=timeout)
        response.raise_for_status()
        return [str(model["id"]) for model in response.json().get("data") or []]
    except (httpx.HTTPError, ValueError, LookupError, TypeError, AttributeError) as exc:
        raise EndpointError(f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_LIMIT]) from exc


def first_model(base_url, *, timeout=10.0) -> str:
    """The id of the first model ``GET /v1/models`` lists; EndpointError if there is none or no answer."""
    ids = model_ids(base_url, timeout=timeout)
    if not ids:
        raise EndpointError("IndexError: the endpoint lists no model")
    return ids[0]


def arrival_offsets(count, rate, seed=0):
    """Seconds after the start at which each request is sent: all at once without a rate, else Poisson."""
    if not rate:
        return [0.0] * count
    rng = random.Random(seed)
    offsets, at = [], 0.0
    for _ in range(count):
        offsets.append(at)
        at += rng.expovariate(rate)
    return offsets


def request_body(spec: LoadSpec, prompt: str) -> dict:
    body = {
        "model": spec.model,
        "max_tokens": spec.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if spec.endpoint_kind == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return body


def endpoint_path(endpoint_kind) -> str:
    return "/v1/chat/completions" if endpoint_kind == "chat" else "/v1/completions"


def _chunk_text(payload, chat):
    choices = payload.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    if chat:
        return (choice.get("delta") or {}).get("content") or ""
    return choice.get("text") or ""


def _http_error_text(response, body: bytes) -> str:
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, LookupError, TypeError):
        message = body.decode(errors="replace").strip()
    return f"HTTP {response.status_code}: {message}"[:ERROR_TEXT_LIMIT]


class StreamTiming:
    """The token arrival times of one streamed answer, fed its SSE lines one by one.

    TTFT is taken at the first chunk that carries text (a chat answer's role-only first chunk is not a
    token), ITL between consecutive text chunks; output tokens come from the final ``usage`` chunk when the
    server sends one, else from the chunks counted.
    """

    def __init__(self, started, *, chat):
        self.started = started
        self.chat = chat
        self.ttft = None
        self.itl = []
        self.chunks = 0
        self.usage_tokens = None
        self._last = started

    def feed(self, line) -> bool:
        """Take one line; False once the stream says ``[DONE]``. Raises ValueError for an error in the stream."""
        line = line.strip()
        if not line.startswith("data:"):
            return True  # blank separators and SSE comments (pings)
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            return False
        now = time.perf_counter()
        payload = json.loads(data)
        if payload.get("error"):
            raise ValueError(f"error in stream: {payload['error'].get('message', payload['error'])}")
        if _chunk_text(payload, self.chat):
            if self.ttft is None:
                self.ttft = now - self.started
            else:
                self.itl.append(now - self._last)
            self._last = now
            self.chunks += 1
        if payload.get("usage"):
            self.usage_tokens = payload["usage"].get("completion_tokens")
        return True

    def record(self, latency) -> RequestRecord:
        if self.ttft is None:
            return RequestRecord(success=False, latency=latency, error="the response carried no tokens")
        output_tokens = self.usage_tokens if self.usage_tokens is not None else self.chunks
        return RequestRecord(success=True, latency=latency, ttft=self.ttft, itl=tuple(self.itl),
                             output_tokens=output_tokens)


async def send_request(client: httpx.AsyncClient, spec: LoadSpec, prompt: str) -> RequestRecord:
    """One streaming request, timed (see StreamTiming); any failure is a record with its error text.

    The whole request, not each read, is bounded by ``spec.timeout``.
    """
    url = spec.base_url.rstrip("/") + endpoint_path(spec.endpoint_kind)
    # The clock starts when the request is built and about to be sent, as a client's user would see it.
    request = client.build_request("POST", url, json=request_body(spec, prompt))
    started = time.perf_counter()
    timing = StreamTiming(started, chat=spec.endpoint_kind == "chat")
    ended = None
    try:
        async with asyncio.timeout(spec.timeout):
            async with contextlib.aclosing(await client.send(request, stream=True)) as response:
                if response.status_code != 200:
                    error = _http_error_text(response, await response.aread())
                    return RequestRecord(success=False, latency=time.perf_counter() - started, error=error)
                async with contextlib.aclosing(response.aiter_lines()) as lines:
                    async for line in lines:
                        if ended is None and not timing.feed(line):
                            ended = time.perf_counter()
                        # After [DONE], read on to the end of the response (the chunked stream's last
                        # chunk follows at once): a response left unread closes its connection, and
                        # every next request would pay a new connection (and a server thread) in its TTFT.
    except TimeoutError:
        if ended is not None:
            return timing.record(ended - started)

        error = f"timed out after {spec.timeout:g} s"
        return RequestRecord(success=False, latency=time.perf_counter() - started, error=error)
    except (httpx.HTTPError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_LIMIT]
        return RequestRecord(success=False, latency=time.perf_counter() - started, error=error)
    return timing.record((ended or time.perf_counter()) - started)


async def warm_up(client: httpx.AsyncClient, spec: LoadSpec):
    """Open the connections the run will use (one ``GET /v1/models`` on each) before any clock starts, so the
    first requests are not timed with a connection's setup; a failure here is left to the requests to say."""
    count = min(spec.concurrency, spec.request_count)
    url = spec.base_url.rstrip("/") + "/v1/models"

    async def one():
        with contextlib.suppress(httpx.HTTPError):
            await client.get(url, timeout=min(spec.timeout, 5.0))

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(min(spec.timeout, 5.0)):
            await asyncio.gather(*(one() for _ in range(count)))


async def generate_load(spec: LoadSpec, stop: asyncio.Event, records: list[RequestRecord]) -> LoadResult:
    """Send the spec's requests, appending each finished one to ``records``; when ``stop`` is set, cancel what
    is in flight and keep what finished."""
    in_flight: list[asyncio.Task] = []
    semaphore = asyncio.Semaphore(spec.concurrency)
    limits = httpx.Limits(max_connections=spec.concurrency, max_keepalive_connections=spec.concurrency)

    async with httpx.AsyncClient(limits=limits, timeout=spec.timeout) as client:
        await warm_up(client, spec)
        started = time.perf_counter()

        async def one(index):
            async with semaphore:
                records.append(await send_request(client, spec, spec.prompts[index % len(spec.prompts)]))

        async def dispatch():
            for index, offset in enumerate(arrival_offsets(spec.request_count, spec.request_rate)):
                delay = started + offset - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                in_flight.append(asyncio.create_task(one(index)))
            await asyncio.gather(*in_flight)

        dispatcher = asyncio.create_task(dispatch())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({dispatcher, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopped = not dispatcher.done()
        for pending in (dispatcher, stopper, *in_flight):
            pending.cancel()
        await asyncio.gather(dispatcher, stopper, *in_flight, return_exceptions=True)
        duration = time.perf_counter() - started
    return LoadResult(records=list(records), duration=duration, stopped=stopped)


def run_load(spec: LoadSpec, *, keep_going=lambda done: True, check_every=1.0) -> LoadResult:
    """Run the load on a thread with its own event loop; every ``check_every`` seconds, on this thread,
    call ``keep_going(number of requests finished so far)`` and stop early (keeping what finished) once it
    answers False. If ``keep_going`` raises, the load is stopped before the exception goes on."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    records: list[RequestRecord] = []
    outcome = {}

    def target():
        asyncio.set_event_loop(loop)
        try:
            outcome["result"] = loop.run_until_complete(generate_load(spec, stop, records))
        except BaseException as exc:  # handed back to the caller's thread below
            outcome["error"] = exc
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    worker = threading.Thread(target=target, name="evaluation-load", daemon=True)
    worker.start()
    def stop_and_wait():
        with contextlib.suppress(RuntimeError):  # the loop finished (and closed) meanwhile: nothing to stop
            loop.call_soon_threadsafe(stop.set)
        worker.join()

    while worker.is_alive():
        worker.join(timeout=check_every)
        if not worker.is_alive():
            break
        try:
            go_on = keep_going(len(records))
        except BaseException:  # the check itself failed (the database is gone): stop the load, then say why
            stop_and_wait()
            raise
        if not go_on:
            stop_and_wait()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
