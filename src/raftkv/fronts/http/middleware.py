"""The middleware pipeline, built from one ordered list (outermost first):

    request id -> access log -> audit -> security headers -> recovery -> CORS
    -> rate limit -> auth -> router

(the access log, audit, CORS and rate limit layers are left out when configured off,
so they cost nothing then).

A middleware overrides ``before(request)`` (return a Response to answer early, or None
to go on) and/or ``after(request, response) -> response`` of :class:`Middleware`. The
pipeline runs the ``before`` hooks outermost first, then the router, then the
``after`` hooks innermost first - so an early answer (a CORS preflight, a 401) still
passes through every layer outside the one that gave it. This is a loop, not nested
closures, and the layers share a compiled base class: the per-request cost of a hook
is one direct C call.

A reply may be a ``Deferred`` response (a write waiting on its commit): the pipeline wraps
its ``finish`` so the ``after`` hooks run when the future resolves. Errors raised by a ``before`` hook inside ``Recovery`` or by a
handler become responses in :class:`Recovery`, the only place that catches bare
``Exception``: raftkv errors map to their status (errors.py), anything else to a
generic 500 whose traceback is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Final

from raftkv.deferred import Deferred
from raftkv.errors import Forbidden, RaftKVError, RateLimited, Unauthenticated, Unavailable
from raftkv.fronts.http import docs
from raftkv.fronts.http.access_log import AccessLog
from raftkv.fronts.http.errors import error_body, error_response
from raftkv.fronts.http.messages import Reply, Request, Response
from raftkv.fronts.http.request_metrics import RequestMetrics
from raftkv.fronts.http.router import Router
from raftkv.service.audit import DENIED, FAILED, OK, AuditLog
from raftkv.service.auth import OPEN, Authenticator, Principal
from raftkv.service.ratelimit import TokenBuckets

log = logging.getLogger("raftkv.http")


class Middleware:
    """A layer of the pipeline; the pipeline calls only the hooks a layer overrides."""

    def before(self, request: Request) -> Response | None:
        return None

    def after(self, request: Request, response: Response) -> Response:
        return response


def _overrides(layer: Middleware, hook: str) -> bool:
    return getattr(type(layer), hook) is not getattr(Middleware, hook)


class Recovery(Middleware):
    """Marks where errors are caught, and turns them into responses."""

    def to_response(self, request: Request, exc: BaseException) -> Response:
        if isinstance(exc, RaftKVError):
            response = error_response(request, exc)
            if response.status == 500:
                log.error("request failed: %s", exc,
                          extra={"requestId": request.request_id.decode()})
            return response
        log.error("unhandled error", exc_info=exc,
                  extra={"requestId": request.request_id.decode(), "route": request.route})
        return Response(500, error_body(request, "internal error", "internal"))


class Pipeline:
    def __init__(self, middlewares: Sequence[Middleware], router: Router) -> None:
        self.middlewares = list(middlewares)
        self.router = router
        recoveries = [m for m in self.middlewares if isinstance(m, Recovery)]
        if len(recoveries) != 1:
            raise ValueError("the pipeline needs exactly one Recovery layer")
        self.recovery = recoveries[0]
        self._guarded_from = self.middlewares.index(self.recovery)
        self._befores: list[tuple[int, Middleware]] = [
            (depth, m) for depth, m in enumerate(self.middlewares) if _overrides(m, "before")]
        # afters[depth]: the layers outside ``depth`` that have an after hook, innermost first
        self._afters: list[list[Middleware]] = [
            [m for m in reversed(self.middlewares[:depth]) if _overrides(m, "after")]
            for depth in range(len(self.middlewares) + 1)]
        self._innermost_afters = self._afters[-1]  # after the router: every layer's

    def handle(self, request: Request) -> Reply:
        depth = len(self.middlewares)
        layer = -1
        try:
            for layer, middleware in self._befores:
                early = middleware.before(request)
                if early is not None:
                    return self._finish(request, early, layer)
            layer = depth
            reply = self.router.dispatch(request)
        except Exception as exc:
            if layer < self._guarded_from:
                raise  # a layer outside Recovery failed: a bug, surfaced by the server
            return self._finish(request, self.recovery.to_response(request, exc), layer)
        if isinstance(reply, Response):
            for middleware in self._innermost_afters:
                reply = middleware.after(request, reply)
            return reply
        inner = reply.finish

        def finish(done: asyncio.Future[object]) -> Response:
            try:
                response = inner(done)
            except (Exception, asyncio.CancelledError) as exc:
                response = self.recovery.to_response(request, exc)
            return self._finish(request, response, depth)

        return Deferred(reply.future, finish)

    def _finish(self, request: Request, response: Response, depth: int) -> Response:
        for middleware in self._afters[depth]:
            response = middleware.after(request, response)
        return response


_perf_counter: Final = time.perf_counter
_SANE_ID: Final = re.compile(rb"[A-Za-z0-9._:\-]{1,128}\Z")


class RequestId(Middleware):
    """Use the client's X-Request-ID when it is sane, else make one; echo it back."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex().encode()
        self._counter = 0

    def before(self, request: Request) -> Response | None:  # (the base's type: no glue)
        given = request.headers.get(b"x-request-id")
        if given is not None and _SANE_ID.match(given):
            request.request_id = given
        else:
            self._counter += 1
            request.request_id = b"%s-%d" % (self._prefix, self._counter)  # (%d: inline C)
        return None

    def after(self, request: Request, response: Response) -> Response:
        response.headers.append((b"X-Request-ID", request.request_id))
        return response


class AccessLogger(Middleware):
    """One line per request: method, route template, status, latency, bytes, request id;
    and the request's metrics (both are on unless configured off)."""

    def __init__(self, sink: AccessLog | None, metrics: RequestMetrics | None = None) -> None:
        self.sink = sink
        self.metrics = metrics

    def after(self, request: Request, response: Response) -> Response:
        elapsed_s = _perf_counter() - request.started
        if self.sink is not None:
            self.sink.request(request.method, request.route, response.status,
                              int(elapsed_s * 1_000_000), len(response.body),
                              request.request_id, request.client)
        if self.metrics is not None:
            self.metrics.observe(request.route, request.method, response.status, elapsed_s)
        return response


class Audit(Middleware):
    """An audit line (``service/audit.py``) per write, admin call (``/v1/admin/``, reads
    such as a backup included) and refused request. Other reads are left out, the etcd
    gateway's included, which arrive as POSTs."""

    READ_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})
    POSTED_READS = ("/kv/range", "/watch", "/lease/timetolive", "/lease/leases",
                    "/cluster/member/list", "/maintenance/status", "/election/leader",
                    "/auth/authenticate")
    KEY_PARAMS = ("key", "name", "id")

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def after(self, request: Request, response: Response) -> Response:
        status = response.status
        denied = status in (401, 403)
        if not denied and not request.path.startswith(b"/v1/admin/") and (
                request.method in self.READ_METHODS
                or request.route.endswith(self.POSTED_READS)):
            return response
        principal = request.principal
        self.audit.record(
            "http", request.request_id.decode(errors="replace"),
            principal.name if principal is not None else "", request.client,
            f"{request.method.decode()} {request.route or request.path.decode(errors='replace')}",
            [request.params[name].decode(errors="backslashreplace")
             for name in self.KEY_PARAMS if name in request.params],
            DENIED if denied else OK if status < 400 else FAILED, status)
        return response


class SecurityHeaders(Middleware):
    """nosniff everywhere; nothing is cached by intermediaries (key reads included)."""

    HEADERS = ((b"X-Content-Type-Options", b"nosniff"), (b"Cache-Control", b"no-store"))

    def after(self, request: Request, response: Response) -> Response:
        response.headers.extend(self.HEADERS)
        return response


class Cors(Middleware):
    """CORS for configured origins: preflight answered with 204 and Max-Age."""

    ALLOW_METHODS = b"GET, PUT, POST, DELETE, HEAD, OPTIONS"
    ALLOW_HEADERS = (b"Authorization, Content-Type, If-Match, If-None-Match, X-Request-ID, "
                     b"Idempotency-Key")
    EXPOSE = b"ETag, X-Request-ID, X-Raftkv-Applied-Index, Retry-After"

    def __init__(self, origins: Sequence[str]) -> None:
        self.any = "*" in origins
        self.origins = {o.encode() for o in origins}

    def _allowed(self, request: Request) -> bytes | None:
        origin = request.headers.get(b"origin")
        if origin is None or not (self.any or origin in self.origins):
            return None
        return origin

    def before(self, request: Request) -> Response | None:
        if request.method != b"OPTIONS" or b"access-control-request-method" not in request.headers:
            return None
        origin = self._allowed(request)
        if origin is None:
            return None
        return Response(204, headers=[
            (b"Access-Control-Allow-Origin", origin), (b"Vary", b"Origin"),
            (b"Access-Control-Allow-Methods", self.ALLOW_METHODS),
            (b"Access-Control-Allow-Headers", self.ALLOW_HEADERS),
            (b"Access-Control-Max-Age", b"600"),
        ])

    def after(self, request: Request, response: Response) -> Response:
        origin = self._allowed(request) if (self.any or self.origins) else None
        if origin is not None:
            response.headers += [(b"Access-Control-Allow-Origin", origin), (b"Vary", b"Origin"),
                                 (b"Access-Control-Expose-Headers", self.EXPOSE)]
        return response


class RateLimit(Middleware):
    """429 with Retry-After when a client address or token exceeds its bucket, and
    503 with Retry-After when too many requests are in flight (load shedding)."""

    def __init__(self, per_client: TokenBuckets, per_token: TokenBuckets,
                 in_flight: Callable[[], int], max_in_flight: int) -> None:
        self.per_client = per_client
        self.per_token = per_token
        self.in_flight = in_flight
        self.max_in_flight = max_in_flight

    def before(self, request: Request) -> Response | None:
        if self.in_flight() > self.max_in_flight:
            raise Unavailable("the server is overloaded; try again later", 1.0)
        wait = self.per_client.take(request.client)
        if not wait:
            auth = request.headers.get(b"authorization")
            if auth is not None:
                wait = self.per_token.take(auth[-16:].decode("latin-1"))
        if wait:
            raise RateLimited("too many requests; slow down", wait)
        return None


# The one body every authentication failure gets, whatever went wrong.
UNAUTHENTICATED = "authentication required: send a valid bearer token"
_PUBLIC: Final = frozenset({b"/livez", b"/readyz", b"/health", b"/openapi.json", *docs.PATHS})
_ADMIN: Final = (b"/metrics", b"/v1/cluster", b"/v1/admin")
_OPEN: Final = OPEN  # (compiled, a Final is a C static; an imported name is a dict lookup)


class Auth(Middleware):
    """Bearer tokens on every route but the probes; per-prefix key permissions. A
    request without a token is who its TLS client certificate says (``[auth]``'s
    ``certificate``), if anyone.

    Missing, malformed, unknown and wrong tokens all get the same 401 body; failed
    attempts also draw from a tight per-address bucket (brute force -> 429)."""

    def __init__(self, authenticator: Authenticator, failures: TokenBuckets) -> None:
        self.authenticator = authenticator
        self.enabled = authenticator.enabled  # (a compiled field: read on every request)
        self.failures = failures

    def before(self, request: Request) -> Response | None:
        if not self.enabled:
            request.principal = _OPEN
            return None
        path = request.path
        if path in _PUBLIC:  # probes and the API description touch no keys
            return None
        header = request.headers.get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        token = token.strip()
        principal = (self.authenticator.authenticate(token)
                     if token and scheme.lower() == b"bearer"
                     else request.principal)  # the client certificate's, if any
        if principal is None:
            wait = self.failures.take(request.client)
            if wait:
                raise RateLimited("too many failed authentication attempts", wait)
            raise Unauthenticated(UNAUTHENTICATED)
        if path.startswith(_ADMIN) and not principal.is_admin:
            raise Forbidden("this token may not use admin routes")
        request.principal = principal
        return None


def principal_of(request: Request) -> Principal:
    """Who sent the request (OPEN when auth is off)."""
    principal: Principal | None = request.principal
    if principal is None:
        raise Unauthenticated(UNAUTHENTICATED)
    return principal


def may_read(request: Request, key: bytes) -> bytes:
    """``key``, if the request's token may read it; else Forbidden."""
    principal = request.principal or principal_of(request)
    if not (principal.unrestricted or principal.may_read(key)):  # the first: no call
        raise Forbidden("this token may not read this key")
    return key


def may_write(request: Request, key: bytes) -> bytes:
    """``key``, if the request's token may write it; else Forbidden."""
    principal = principal_of(request)
    if not (principal.unrestricted or principal.may_write(key)):
        raise Forbidden("this token may not write this key")
    return key
