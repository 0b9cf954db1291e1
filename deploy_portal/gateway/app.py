"""The endpoint gateway: one stable, authenticated URL per task, balanced over its ready replicas, metered.

``/<project>/<task>/<path>`` (the task's name or id, see ``endpoints.paths``) is proxied to ``<path>`` on one of
the current run's ready replicas. Built on Starlette (a small, well-kept ASGI toolkit: no middleware stack or
per-request ORM between the client and the model) served by uvicorn (uvloop + httptools), with a lean keep-alive
HTTP/1.1 client of its own upstream (``upstream``: httptools' parser, a relay woken once per batch of bytes).
Every answer the gateway makes itself is JSON in OpenAI's error shape (``{"error": {...}}``), so an OpenAI client
shows it as it shows its own.

- Who: ``Authorization: Bearer <key>`` (``endpoints.keys``) unless the task is public; checked against the
  keys held in memory (``world.World``, read again within ``GATEWAY_REFRESH_SECONDS`` of a change), never a query
  per request. No key or a bad one: 401; a key that may not call the task: 404, as for a task that does not exist.
- Not running: 503 with the task's state and why (its queue position and reason while queued).
- Balancing: least outstanding requests (``endpoints.balancing``); a connection refused or reset before the answer
  started is tried once more on another replica, and that replica is left out for a few seconds.
- Streaming: the answer is passed on as it comes (SSE token by token); a client that goes away closes the upstream
  request at once.
- Metering: requests, errors (5xx), latency and tokens (``usage`` of the answer, or of the stream's last event)
  per task, key and hour, written in batches (``world.Meter``). Optional per-key limits answer 429 with Retry-After.
"""

import asyncio
import contextlib
import math
import time
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.utils import translation
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.routing import Route

from deploy_portal.messages import render
from endpoints import selectors
from endpoints.balancing import Balancer
from endpoints.keys import bearer_key, key_allows, key_digest
from endpoints.usage import JSON_BODY_BYTES, STREAM_TAIL_BYTES, tokens_of_json, tokens_of_stream
from scheduler.selectors import queue_info_for
from tasks.states import Status

from .upstream import Pool, UpstreamError, UpstreamTimeout
from .world import Meter, World, _read

# Hop-by-hop headers (RFC 9110 §7.6.1) are the connection's, not the message's; the key stays with the gateway.
HOP_BY_HOP = {
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"host",
}
# What the caller sent for the gateway and the portal, not for the model: its key, the portal's cookies.
KEPT_HERE = {b"authorization", b"cookie"}
# The body was read whole here: the replica gets its own length, and nothing to continue.
FRAMED_HERE = {b"content-length", b"expect"}
NOT_FORWARDED = frozenset(HOP_BY_HOP | KEPT_HERE | FRAMED_HERE)


def error(status, message, kind, code=None, headers=None, **extra):
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}, **extra}, status, headers=headers)


def _language(request):
    """The first language of Accept-Language the site speaks, else its default."""
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip()
        if tag and tag != "*":
            try:
                return translation.get_supported_language_variant(tag)
            except LookupError:
                continue
    return settings.LANGUAGE_CODE


def _not_running(task, user, language):
    """The 503 body of a task that does not answer now: its state and why, in ``language``."""
    with translation.override(language):
        info = queue_info_for([task], user=user).get(task.pk) if task.status == Status.QUEUED else None
        status = str(Status(task.status).label)
        if info is not None:
            message = translation.gettext("The task is queued, position %(position)s: %(reason)s") % {
                "position": info[0], "reason": info[1]}
        elif task.status == Status.DEPLOYING:
            message = translation.gettext("The task is deploying: its replicas are starting. Try again shortly.")
        elif task.status == Status.RUNNING:
            message = translation.gettext("The task runs, but none of its replicas is ready now.")
        else:
            said = render(task.status_message)
            message = translation.gettext("The task is %(status)s and does not answer.") % {"status": status}
            message = f"{message} {said}" if said else message
        return {
            "message": message, "status": task.status, "status_display": status,
            "queue_position": info[0] if info else None, "reason": info[1] if info else None,
        }


class Gateway:
    def __init__(self, *, refresh_seconds=None, flush_seconds=None, upstream_timeout=None):
        self.world = World(refresh_seconds or settings.GATEWAY_REFRESH_SECONDS)
        self.meter = Meter(flush_seconds or settings.GATEWAY_FLUSH_SECONDS)
        self.balancer = Balancer(eject_seconds=settings.GATEWAY_EJECT_SECONDS)
        self.buckets = {}  # key id: (tokens, at) — the per-key rate limit, per gateway process
        self.upstream_timeout = upstream_timeout or settings.GATEWAY_UPSTREAM_TIMEOUT_SECONDS
        self.pool = None
        self.tasks = []

    # -- lifespan ------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        self.pool = Pool(connect_timeout=settings.GATEWAY_CONNECT_TIMEOUT_SECONDS, timeout=self.upstream_timeout)
        try:
            await self.world.refresh()
        except Exception:  # noqa: BLE001 - serve 503s until the database answers; keep_fresh retries
            pass
        self.tasks = [asyncio.create_task(self.world.keep_fresh()), asyncio.create_task(self.meter.keep_flushing())]
        try:
            yield
        finally:
            for task in self.tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await self.meter.flush()
            self.pool.close()

    # -- routes --------------------------------------------------------------------------
    async def healthz(self, request):
        age = None if self.world.loaded_at is None else time.monotonic() - self.world.loaded_at
        fresh = age is not None and age < max(30.0, 5 * self.world.refresh_seconds)
        body = {"status": "ok" if fresh else "stale", "routes": len(self.world.routes), "keys": len(self.world.grants),
                "read_seconds_ago": None if age is None else round(age, 1)}
        return JSONResponse(body, 200 if fresh else 503)

    def _limited(self, grant):
        """Seconds to wait when the key is over its requests-per-minute (a token bucket), else None."""
        if grant is None or not grant.rate_limit:
            return None
        rate = grant.rate_limit / 60.0
        now = time.monotonic()
        tokens, at = self.buckets.get(grant.key_id, (float(grant.rate_limit), now))
        tokens = min(float(grant.rate_limit), tokens + (now - at) * rate)
        if tokens < 1.0:
            self.buckets[grant.key_id] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))
        self.buckets[grant.key_id] = (tokens - 1.0, now)
        return None

    async def proxy(self, request):
        project, ref = request.path_params["project"], request.path_params["task"]
        key = bearer_key(request.headers.get("authorization"))
        grant = self.world.grant(key_digest(key)) if key else None
        now = datetime.now(UTC)

        def allowed(task_id, project_id, public):
            return public or key_allows(grant, task_id=task_id, project_id=project_id, now=now)

        route = self.world.find(project, ref)
        if route is not None and grant is None and not route.public:
            return self._unauthenticated(key)  # from memory: a flood of bad keys costs no query
        if route is None or not allowed(route.task_id, route.project_id, route.public):
            return await self._not_routed(request, project, ref, grant, key, allowed)
        if (wait := self._limited(grant)) is not None:
            return error(429, f"Over this key's limit of {grant.rate_limit} requests a minute.", "rate_limit_exceeded",
                         headers={"Retry-After": str(wait)})
        if not route.upstreams:
            task = await sync_to_async(_read, thread_sensitive=False)(lambda: selectors.task_lookup(project, str(route.task_id)))
            return await self._unavailable(request, task[0] if task else None, grant)
        return await self._forward(request, route, grant)

    async def _not_routed(self, request, project, ref, grant, key, allowed):
        """A path that names no running task this caller may call: 401, 404, 409 or 503, from the database."""
        tasks = await sync_to_async(_read, thread_sensitive=False)(selectors.task_lookup, project, ref)
        callable_ = [t for t in tasks if allowed(t.pk, t.project_id, t.public_endpoint)]
        if not callable_:
            if grant is None:
                return self._unauthenticated(key)
            return error(404, "No such task, or not one this key may call.", "not_found", "task_not_found")
        if len(callable_) > 1:
            ids = ", ".join(str(t.pk) for t in callable_)
            return error(409, f"Several tasks of project {project} are named {ref}: call /{project}/<id>/ ({ids}).",
                         "ambiguous_task", "ambiguous_task", tasks=[t.pk for t in callable_])
        return await self._unavailable(request, callable_[0], grant)

    @staticmethod
    def _unauthenticated(key):
        if key is None:
            return error(401, "An API key is required: send Authorization: Bearer <key>.", "authentication_error",
                         "missing_api_key", headers={"WWW-Authenticate": "Bearer"})
        return error(401, "The API key is not valid: unknown, revoked or expired.", "authentication_error",
                     "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    async def _unavailable(self, request, task, grant):
        if task is None:
            return error(404, "No such task, or not one this key may call.", "not_found", "task_not_found")

        def said():
            user = get_user_model().objects.filter(pk=grant.user_id).first() if grant else None
            return _not_running(task, user or AnonymousUser(), _language(request))

        body = await sync_to_async(_read, thread_sensitive=False)(said)
        return error(503, body.pop("message"), "task_not_running", task.status, headers={"Retry-After": "5"},
                     task={"id": task.pk, **body})

    async def _forward(self, request, route, grant):
        started = time.perf_counter()
        try:
            content = await self._body(request)
        except ValueError:
            return error(413, f"The request body is larger than {settings.GATEWAY_MAX_BODY_BYTES} bytes.",
                         "invalid_request_error", "request_too_large")
        except ClientDisconnect:
            return error(400, "The client went away.", "invalid_request_error")
        raw = request.scope.get("raw_path") or request.url.path.encode()
        rest = raw.split(b"/", 3)[3] if raw.count(b"/") >= 3 else b""
        query = request.scope.get("query_string", b"")
        target = b"/" + rest + (b"?" + query if query else b"")
        headers = [(k, v) for k, v in request.scope["headers"] if k not in NOT_FORWARDED]
        tried = set()
        while True:
            upstream = self.balancer.pick(route.upstreams, exclude=tried)
            if upstream is None or len(tried) >= 2:
                return error(502, "No replica of the task answered.", "upstream_error", "no_replica_answered")
            self.balancer.started(upstream)
            try:
                answer = await self.pool.request(upstream, request.method, target, headers, content)
            except UpstreamTimeout:
                self.balancer.finished(upstream)
                return error(504, "The replica did not answer in time.", "upstream_error", "upstream_timeout")
            except UpstreamError as exc:
                self.balancer.finished(upstream)
                if not exc.before_answer:
                    return error(502, "The replica broke off its answer.", "upstream_error", "upstream_error")
                # Nothing of the answer came: another replica may take it (once), and this one sits out a while.
                self.balancer.eject(upstream)
                tried.add(upstream)
                continue
            except BaseException:  # cancelled: the outstanding count is given back all the same
                self.balancer.finished(upstream)
                raise
            break
        return _Relay(self, answer, upstream, route, grant, started)

    async def _body(self, request):
        limit = settings.GATEWAY_MAX_BODY_BYTES
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ValueError("too large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ValueError("too large")
            chunks.append(chunk)
        return b"".join(chunks)

    def finished(self, *, route, grant, upstream, status, started, tokens):
        self.balancer.finished(upstream)
        self.meter.count(
            task_id=route.task_id, project_id=route.project_id, key_id=grant.key_id if grant else None,
            status=status, latency_ms=int((time.perf_counter() - started) * 1000), tokens=tokens,
        )


class _Relay:
    """The replica's answer passed on as it comes, as a raw ASGI response: each send carries everything that arrived
    since the last one. The upstream connection is closed however the answer ends (the client gone included: a
    watcher on ``receive`` aborts it at once), the replica's outstanding count given back and the answer metered."""

    def __init__(self, gateway, answer, upstream, route, grant, started):
        self.gateway, self.answer, self.upstream, self.route, self.grant, self.started = (
            gateway, answer, upstream, route, grant, started)
        kind = answer.header("content-type") or ""
        self.stream_kind = "sse" if kind.startswith("text/event-stream") else "json" if "json" in kind else None
        self.kept, self.failed, self.gone = bytearray(), False, False

    async def _watch(self, receive):
        # The body was read before: what receive() says now is that the client left (or that the answer is done).
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.answer.abort()

    async def __call__(self, scope, receive, send):
        answer, kept, sse = self.answer, self.kept, self.stream_kind == "sse"
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            headers = [(k, v) for k, v in answer.headers if k not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            try:
                async for data in answer.chunks():
                    if sse:
                        kept += data
                        del kept[:-STREAM_TAIL_BYTES]
                    elif self.stream_kind == "json" and len(kept) <= JSON_BODY_BYTES:
                        kept += data
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            except UpstreamError:
                self.failed = not self.gone  # the replica broke off mid-answer: the answer ends there
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            answer.close()
            tokens = None
            if sse:
                tokens = tokens_of_stream(bytes(kept))
            elif self.stream_kind == "json" and answer.header("content-encoding") is None:
                tokens = tokens_of_json(bytes(kept))
            # 499: the client closed the request (nginx's word for it), not an error of the replica's.
            status = 502 if self.failed else 499 if self.gone else answer.status
            self.gateway.finished(route=self.route, grant=self.grant, upstream=self.upstream, status=status,
                                  started=self.started, tokens=tokens)


def make_app(**options):
    gateway = Gateway(**options)
    routes = [
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/{project}/{task}/{rest:path}", gateway.proxy,
              methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    ]
    app = Starlette(routes=routes, lifespan=gateway.lifespan)
    app.state.gateway = gateway
    return app
