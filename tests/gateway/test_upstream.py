"""The gateway's upstream client against scripted replicas: real sockets on loopback, each replica a small asyncio
server that answers what a test tells it (bytes as they would come off the wire)."""

import asyncio
import functools
import inspect
from concurrent.futures import ThreadPoolExecutor

import pytest

from deploy_portal.gateway.upstream import Pool, UpstreamError, UpstreamTimeout, split_address

pytestmark = pytest.mark.timeout(30)


def own_loop(test):
    """Run the coroutine test in an event loop of its own, on a thread of its own: the browser tests' loop may be
    running on the main thread by the time these run (pytest-asyncio would refuse to start one there)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, test(*args, **kwargs)).result()

    run.__signature__ = inspect.signature(test)
    return run

OK_CHUNKED = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
              b"8\r\ndata: 1\n\r\n8\r\ndata: 2\n\r\n0\r\n\r\n")


class Closing(list):
    """Parts written, then the connection closed."""


class Replica:
    """Answers each request of a connection with the next of ``script``'s items: bytes written in one go, a list of
    bytes written with pauses between (a ``Closing`` list: then the connection closed), ``"close"`` (read the
    request, close without a word) or ``"silent"``."""

    def __init__(self, *script):
        self.script = list(script)
        self.connections = 0
        self.requests = []
        self.handlers = set()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        for handler in self.handlers:
            handler.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)

    async def _serve(self, reader, writer):
        self.connections += 1
        self.handlers.add(asyncio.current_task())
        try:
            while self.script:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                step = self.script.pop(0)
                if step == "close":
                    break
                if step == "silent":
                    await asyncio.sleep(30)
                for part in step if isinstance(step, list) else [step]:
                    writer.write(part)
                    await writer.drain()
                    await asyncio.sleep(0.05)
                if isinstance(step, Closing):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def body_of(answer):
    return b"".join([chunk async for chunk in answer.chunks()])


def pool(timeout=5.0):
    return Pool(connect_timeout=1.0, timeout=timeout)


@pytest.mark.parametrize("address, expected", [("10.0.0.7:8000", ("10.0.0.7", 8000)),
                                               ("[fd00::7]:8000", ("fd00::7", 8000))])
def test_an_address_splits_into_host_and_port(address, expected):
    assert split_address(address) == expected


@own_loop
async def test_a_chunked_answer_is_unframed_and_the_connection_kept_for_the_next_request():
    async with Replica(OK_CHUNKED, OK_CHUNKED) as replica:
        upstreams = pool()
        for _ in range(2):
            answer = await upstreams.request(replica.address, "POST", b"/v1/x?a=1", [(b"x-trace", b"7")], b"{}")
            assert answer.status == 200 and answer.header("Content-Type") == "text/event-stream"
            assert await body_of(answer) == b"data: 1\ndata: 2\n"
            answer.close()
        assert (replica.connections, upstreams.opened) == (1, 1)
        first = replica.requests[0]
        assert first.startswith(b"POST /v1/x?a=1 HTTP/1.1\r\n")
        assert b"\r\nx-trace: 7\r\n" in first and b"\r\ncontent-length: 2\r\n" in first and first.endswith(b"{}")
        upstreams.close()


@own_loop
async def test_what_arrived_while_the_relay_was_busy_comes_as_one_piece():
    parts = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", b"1\r\na\r\n", b"1\r\nb\r\n", b"0\r\n\r\n"]
    async with Replica(parts) as replica:
        answer = await pool().request(replica.address, "GET", b"/", [], b"")
        await asyncio.sleep(0.3)  # everything arrives meanwhile
        assert [chunk async for chunk in answer.chunks()] == [b"ab"]


@own_loop
async def test_a_kept_connection_the_replica_dropped_is_replaced_without_failing_the_request():
    async with Replica(OK_CHUNKED, "close", OK_CHUNKED) as replica:
        upstreams = pool()
        answer = await upstreams.request(replica.address, "GET", b"/", [], b"")
        await body_of(answer)
        answer.close()
        answer = await upstreams.request(replica.address, "GET", b"/", [], b"")  # the kept one is closed unanswered
        assert await body_of(answer) == b"data: 1\ndata: 2\n"
        assert upstreams.opened == 2


@own_loop
async def test_a_refused_connection_is_an_error_before_the_answer():
    async with Replica() as replica:
        address = replica.address
    with pytest.raises(UpstreamError) as raised:
        await pool().request(address, "GET", b"/", [], b"")
    assert raised.value.before_answer


@own_loop
async def test_a_replica_that_breaks_off_mid_answer_is_an_error_after_the_answer_started():
    broken = Closing([b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n", b"only part of it"])
    async with Replica(broken) as replica:
        answer = await pool().request(replica.address, "GET", b"/", [], b"")
        received = []
        with pytest.raises(UpstreamError) as raised:
            async for chunk in answer.chunks():
                received.append(chunk)
        assert b"".join(received) == b"only part of it" and not raised.value.before_answer


@own_loop
async def test_an_answer_without_a_length_ends_with_the_connection():
    unframed = Closing([b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it"])
    async with Replica(unframed) as replica:
        upstreams = pool()
        answer = await upstreams.request(replica.address, "GET", b"/", [], b"")
        assert await body_of(answer) == b"all of it"
        answer.close()
        assert upstreams.idle.get(replica.address, []) == []  # not kept: it is closed


@own_loop
async def test_a_silent_replica_times_out():
    async with Replica("silent") as replica:
        with pytest.raises(UpstreamTimeout) as raised:
            await pool(timeout=0.3).request(replica.address, "GET", b"/", [], b"")
        assert raised.value.before_answer


@own_loop
async def test_an_interim_100_continue_is_skipped():
    async with Replica(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok") as replica:
        answer = await pool().request(replica.address, "PUT", b"/", [], b"x")
        assert (answer.status, await body_of(answer)) == (201, b"ok")


@own_loop
async def test_an_aborted_answer_stops_the_relay_and_drops_the_connection():
    parts = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", b"1\r\na\r\n"] + [b"1\r\nb\r\n"] * 20
    async with Replica(parts) as replica:
        upstreams = pool()
        answer = await upstreams.request(replica.address, "GET", b"/", [], b"")
        asyncio.get_running_loop().call_later(0.2, answer.abort)
        with pytest.raises(UpstreamError):
            await body_of(answer)
        answer.close()
        assert upstreams.idle.get(replica.address, []) == []


@own_loop
async def test_bytes_past_the_end_of_an_answer_are_not_passed_on_nor_the_connection_kept():
    async with Replica(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nz",
                       OK_CHUNKED) as replica:
        upstreams = pool()
        answer = await upstreams.request(replica.address, "GET", b"/", [], b"")
        assert await body_of(answer) == b"ok"
        answer.close()
        answer = await upstreams.request(replica.address, "GET", b"/", [], b"")
        assert await body_of(answer) == b"data: 1\ndata: 2\n"
        assert upstreams.opened == 2  # the first connection, which said more than it was asked, was dropped
