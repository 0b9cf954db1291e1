"""The gateway's client to the replicas: HTTP/1.1 on asyncio protocols, httptools' parser, a keep-alive pool per
replica address.

Why not httpx (which the gateway used first): a relayed stream is thousands of small chunks a second, and httpx's
stream costs about 55 µs a chunk here, before the ASGI send. This client keeps what arrived in a list as the
parser hands it over and wakes the relay once for everything that arrived since the last wake-up: a busy gateway
sends fewer, larger writes instead of falling behind. It does what the gateway needs and no more: one request per
connection at a time, no TLS, no redirects, no content decoding (bodies pass through as the replica sent them;
only the chunked framing is undone, uvicorn frames them again for the client).

Errors are ``UpstreamError``; ``before_answer`` says that nothing of the answer arrived, so another replica may
take the request.
"""

import asyncio

import httptools

BUFFERED_BYTES = 2**20  # read no more from the replica while this much waits for a slow client


class UpstreamError(Exception):
    def __init__(self, message, *, before_answer=False):
        super().__init__(message)
        self.before_answer = before_answer


class UpstreamTimeout(UpstreamError):
    pass


def split_address(address):
    """``"10.0.0.7:8000"`` or ``"[fd00::7]:8000"`` → ``("10.0.0.7", 8000)`` / ``("fd00::7", 8000)``."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class _Connection(asyncio.Protocol):
    """One connection to one replica, answering one request at a time (the parser's callbacks are its methods)."""

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.closed = False
        self._start()

    def _start(self):
        self.parser = httptools.HttpResponseParser(self)
        self.status = None
        self.headers = []
        self.chunks = []
        self.buffered = 0
        self.complete = False
        self.error = None
        self.received = False
        self.waiter = None
        self.head = False
        self.keep_alive = False
        self.extra = False  # bytes past the end of the answer: the connection cannot be trusted with another
        self.delimited = False  # a length or chunked framing: else the answer ends with the connection

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if self.complete:  # the answer was whole: what follows belongs to no request
            self.extra = True
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(UpstreamError(f"the replica's answer is not HTTP: {exc}"))
            self.transport.close()

    def eof_received(self):
        # An answer without a length ends with the connection; otherwise the replica went away mid-answer.
        if self.status is not None and not self.delimited and not self.complete:
            self.complete = True
            self._wake()
        elif not self.complete and self.error is None:
            self._fail(UpstreamError("the replica closed the connection", before_answer=not self.received))
        return False  # close the transport

    def connection_lost(self, exc):
        self.closed = True
        if not self.complete and self.error is None:
            self._fail(UpstreamError(f"the connection to the replica was lost: {exc or 'closed'}",
                                     before_answer=not self.received))
        self._wake()

    def pause_writing(self):  # pragma: no cover - a request body is written at once, the transport buffers it
        pass

    def resume_writing(self):  # pragma: no cover
        pass

    # -- httptools callbacks ------------------------------------------------------------------
    def on_message_begin(self):
        if self.complete:  # a second answer in the same read
            self.extra = True

    def on_header(self, name, value):
        if self.extra:
            return
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or lowered == b"transfer-encoding" and b"chunked" in value.lower():
            self.delimited = True

    def on_headers_complete(self):
        self.status = self.parser.get_status_code()
        # Asked now: once the message is complete the parser has moved on to the next one.
        self.keep_alive = self.parser.should_keep_alive()
        if self.head or self.status in (204, 304) or 100 <= self.status < 200:
            self.complete = self.status >= 200  # no body follows (an interim 1xx is skipped below)
            if self.status < 200:
                self.status, self.headers = None, []
        self._wake()

    def on_body(self, body):
        if self.extra:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered >= BUFFERED_BYTES:
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self):
        if self.status is not None and not self.extra:
            self.complete = True
            self._wake()

    # -- the request's side ---------------------------------------------------------------------
    def _fail(self, error):
        self.error = error
        self._wake()

    def _wake(self):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self, timeout):
        self.waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, self._timed_out, self.waiter)
        try:
            await self.waiter
        finally:
            timer.cancel()
            self.waiter = None

    def _timed_out(self, waiter):
        if not waiter.done():
            self._fail(UpstreamTimeout("the replica did not answer in time", before_answer=self.status is None))
            self.transport.close()

    @property
    def reusable(self):
        return not self.closed and not self.transport.is_closing() and self.error is None and not self.extra


class Answer:
    """A replica's answer: ``status`` and ``headers`` (raw, lower-cased names) known, the body read with
    ``chunks()``; ``close()`` gives the connection back (or drops it when the answer was not read to its end)."""

    def __init__(self, pool, address, connection, timeout):
        self.pool, self.address, self.connection, self.timeout = pool, address, connection, timeout
        self.status = connection.status
        self.headers = [(name.lower(), value) for name, value in connection.headers]
        self._closed = False

    def header(self, name):
        name = name.encode().lower() if isinstance(name, str) else name
        return next((value.decode("latin-1") for key, value in self.headers if key == name), None)

    async def chunks(self):
        """The body as it comes: each item is everything that arrived since the last one. UpstreamError when the
        replica breaks off or falls silent for longer than the timeout."""
        connection = self.connection
        while True:
            if connection.chunks:
                data = b"".join(connection.chunks) if len(connection.chunks) > 1 else connection.chunks[0]
                connection.chunks.clear()
                if connection.buffered >= BUFFERED_BYTES and not connection.closed:
                    connection.transport.resume_reading()
                connection.buffered = 0
                yield data
                continue
            if connection.complete:  # whole, even if the replica misbehaved after it (it is not kept then)
                return
            if connection.error is not None:
                raise connection.error
            await connection.wait(self.timeout)

    def abort(self):
        """The client went away: drop the connection now (a waiting ``chunks()`` raises)."""
        if not self.connection.complete:
            self.connection._fail(UpstreamError("the client went away"))
        self.connection.transport.close()

    def close(self):
        if self._closed:
            return
        self._closed = True
        connection = self.connection
        if connection.complete and connection.keep_alive and connection.reusable and not connection.chunks \
                and not connection.head:
            self.pool._release(self.address, connection)
        else:
            connection.transport.close()


class Pool:
    """Keep-alive connections per replica address, opened as needed; idle ones beyond ``keep`` are closed."""

    def __init__(self, *, connect_timeout, timeout, keep=256):
        self.connect_timeout, self.timeout, self.keep = connect_timeout, timeout, keep
        self.idle = {}  # address: [connection, ...]
        self.opened = 0  # connections made (for tests and the benchmark's curiosity)

    async def request(self, address, method, target, headers, body):
        """Send one request (``target``: the raw path and query, bytes; ``headers``: (name, value) bytes pairs);
        return its ``Answer`` once the status line and headers arrived."""
        connection = self._idle(address)
        if connection is not None:
            try:
                return await self._exchange(address, connection, method, target, headers, body)
            except UpstreamError as exc:
                if not exc.before_answer or isinstance(exc, UpstreamTimeout):
                    raise
                # A kept connection the replica closed meanwhile: once more on a new one, as HTTP clients do.
        return await self._exchange(address, await self._open(address), method, target, headers, body)

    def _idle(self, address):
        idle = self.idle.get(address)
        while idle:
            connection = idle.pop()
            if connection.reusable:
                return connection
            connection.transport.close()
        return None

    async def _open(self, address):
        loop = asyncio.get_running_loop()
        host, port = split_address(address)
        try:
            async with asyncio.timeout(self.connect_timeout):
                _transport, connection = await loop.create_connection(lambda: _Connection(loop), host, port)
        except TimeoutError:
            raise UpstreamError(f"no connection to {address} within {self.connect_timeout} s",
                                before_answer=True) from None
        except OSError as exc:
            raise UpstreamError(f"no connection to {address}: {exc.strerror or exc}", before_answer=True) from None
        self.opened += 1
        return connection

    async def _exchange(self, address, connection, method, target, headers, body):
        connection._start()
        connection.head = method == "HEAD"
        lines = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method.encode(), target, address.encode())]
        lines.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(b"content-length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        lines.append(body)
        connection.transport.write(b"".join(lines))
        try:
            while connection.status is None:
                if connection.error is not None:
                    raise connection.error
                await connection.wait(self.timeout)
        except BaseException:  # an error, or the request cancelled (the gateway stopping): the connection goes
            connection.transport.close()
            raise
        return Answer(self, address, connection, self.timeout)

    def _release(self, address, connection):
        idle = self.idle.setdefault(address, [])
        if len(idle) < self.keep:
            idle.append(connection)
        else:
            connection.transport.close()

    def close(self):
        for idle in self.idle.values():
            for connection in idle:
                connection.transport.close()
        self.idle.clear()
