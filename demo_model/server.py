"""The demo model's HTTP server: stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive, SSE streaming.

Timing promise: a completion's first token is sent ``first_token_delay`` seconds after the request
arrives (its first line is read) and each next token ``token_delay`` seconds after the one before (scheduled against the
request's start, so delays do not drift); a non-streaming answer is sent when its last token would be.
"""

import argparse
import itertools
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from . import generation
from .generation import RequestError, error_body


@dataclass(frozen=True)
class ServerConfig:
    model: str = "demo-llm"
    token_delay: float = 0.0
    first_token_delay: float = 0.0
    fail_every: int = 0  # answer every Nth completion request with HTTP 500; 0 = never


class DemoModelServer(ThreadingHTTPServer):
    """Holds the config and the request counters the handler threads share."""

    daemon_threads = True
    # A load test opens many connections at once; the stdlib's backlog of 5 would drop some SYNs (1 s retries).
    request_queue_size = 256

    def __init__(self, address, config: ServerConfig):
        super().__init__(address, DemoModelHandler)
        self.config = config
        self.started = int(time.time())
        self._ids = itertools.count(1)
        self._completions = itertools.count(1)
        self._lock = threading.Lock()

    def next_request_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def should_fail(self) -> bool:
        """Count one completion request; whether it is one of the every-Nth that fail."""
        with self._lock:
            number = next(self._completions)
        return self.config.fail_every > 0 and number % self.config.fail_every == 0


class DemoModelHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-model/1.0"
    # Tokens are small writes; Nagle plus delayed ACKs would add tens of milliseconds to each.
    disable_nagle_algorithm = True
    server: DemoModelServer

    def parse_request(self):
        # The request has arrived once its first line is read: the delays count from here, not from after
        # its headers, body and JSON are parsed (which would add their time to every TTFT measured).
        self.arrived = time.monotonic()
        return super().parse_request()

    # --- routing ------------------------------------------------------------
    @property
    def route(self):
        return urlsplit(self.path).path

    def do_GET(self):
        if self.route == "/health":
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        elif self.route == "/v1/models":
            model = {"id": self.server.config.model, "object": "model", "created": self.server.started,
                     "owned_by": "demo-model"}
            self._send_json(HTTPStatus.OK, {"object": "list", "data": [model]})
        else:
            self._send_error(HTTPStatus.NOT_FOUND, f"No route {self.route}.", error_type="NotFoundError")

    def do_POST(self):
        body = self._read_body()
        routes = {"/v1/completions": False, "/v1/chat/completions": True}
        if self.route not in routes:
            self._send_error(HTTPStatus.NOT_FOUND, f"No route {self.route}.", error_type="NotFoundError")
            return
        chat = routes[self.route]
        try:
            if body is None:
                raise RequestError(400, "The request body is not valid JSON.")
            prompt, max_tokens, stream, include_usage = generation.parse_request(
                body, chat=chat, model=self.server.config.model
            )
        except RequestError as exc:
            self._send_error(exc.status, exc.message, error_type=exc.error_type, param=exc.param)
            return
        if self.server.should_fail():
            self._send_error(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                "The demo model failed this request on purpose (--fail-every).",
                error_type="InternalServerError",
            )
            return
        started = self.arrived
        request_id = f"{'chatcmpl' if chat else 'cmpl'}-{self.server.next_request_id():08d}"
        tokens = generation.tokens_for(prompt, max_tokens)
        if stream:
            self._stream(chat, request_id, prompt, tokens, include_usage, started)
        else:
            self._wait_until(started, len(tokens) - 1)
            self._send_json(HTTPStatus.OK, generation.full_response(
                chat=chat, request_id=request_id, model=self.server.config.model, prompt=prompt, tokens=tokens
            ))

    # --- responses ----------------------------------------------------------
    def _stream(self, chat, request_id, prompt, tokens, include_usage, started):
        model = self.server.config.model
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for index, token in enumerate(tokens):
                self._wait_until(started, index)
                chunk = generation.stream_chunk(
                    chat=chat, request_id=request_id, model=model, token=token,
                    first=index == 0, last=index == len(tokens) - 1,
                )
                self._write_event(chunk)
            if include_usage:
                self._write_event(generation.usage_chunk(
                    chat=chat, request_id=request_id, model=model, prompt=prompt, completion_tokens=len(tokens)
                ))
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            # The client went away mid-stream; nothing is left to answer.
            self.close_connection = True

    def _wait_until(self, started, token_index):
        config = self.server.config
        due = started + config.first_token_delay + token_index * config.token_delay
        remaining = due - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def _write_event(self, payload):
        self._write_chunk(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")

    def _write_chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _send_json(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status, message, *, error_type, param=None):
        self._send_json(status, error_body(message, error_type=error_type, code=int(status), param=param))

    def _read_body(self):
        """The JSON body, or None when it is not valid JSON."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            return None

    def log_message(self, format, *args):
        # One line per request, on stdout, where the runtime collects an instance's log.
        print(f"{self.address_string()} - [{self.log_date_time_string()}] {format % args}", flush=True)


def _env_float(name, default):
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def _env_int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def parse_args(argv=None):
    """Flags win over the environment (PORT, DEMO_TOKEN_DELAY, DEMO_FIRST_TOKEN_DELAY, DEMO_FAIL_EVERY)."""
    parser = argparse.ArgumentParser(prog="python -m demo_model", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=_env_int("PORT", 8000))
    parser.add_argument("--model", default="demo-llm")
    parser.add_argument("--token-delay", type=float, default=_env_float("DEMO_TOKEN_DELAY", 0.0),
                        help="seconds between tokens")
    parser.add_argument("--first-token-delay", type=float, default=_env_float("DEMO_FIRST_TOKEN_DELAY", 0.0),
                        help="seconds before the first token")
    parser.add_argument("--fail-every", type=int, default=_env_int("DEMO_FAIL_EVERY", 0),
                        help="answer every Nth completion request with HTTP 500")
    args = parser.parse_args(argv)
    if args.token_delay < 0 or args.first_token_delay < 0 or args.fail_every < 0:
        parser.error("delays and --fail-every must not be negative")
    return args


def main(argv=None) -> int:
    """Serve until SIGTERM or SIGINT, then close the socket and exit 0."""
    args = parse_args(argv)
    config = ServerConfig(args.model, args.token_delay, args.first_token_delay, args.fail_every)
    server = DemoModelServer((args.host, args.port), config)

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return, so it must not run on the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"serving {config.model} on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    print("demo model stopped", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
