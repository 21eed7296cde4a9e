"""The middleware chain, built from one ordered list (outermost first):

    request id -> access log -> security headers -> recovery -> CORS -> rate limit
    -> auth -> render errors -> router

``RenderErrors`` turns raftkv errors raised by handlers into their responses, so the
layers above it (CORS, security headers, the access log) see them as responses.

A middleware is ``fn(request, next) -> Response | Future[Response]``. Replies may be
futures (a write waiting on its commit), so post-processing goes through
:func:`after`, which runs at once for a ready Response and on completion otherwise.
Recovery is the only place that catches bare ``Exception``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Sequence

from raftkv.errors import RaftKVError
from raftkv.fronts.http.errors import error_body, error_response
from raftkv.fronts.http.messages import Reply, Request, Response
from raftkv.logs import AccessLog

log = logging.getLogger("raftkv.http")

Next = Callable[[Request], Reply]
Middleware = Callable[[Request, Next], Reply]


def after(reply: Reply, on_response: Callable[[Response], Response],
          on_error: Callable[[BaseException], Response] | None = None) -> Reply:
    if isinstance(reply, Response):
        return on_response(reply)
    out: asyncio.Future[Response] = reply.get_loop().create_future()

    def done(f: asyncio.Future[Response]) -> None:
        try:
            exc = f.exception()
            if exc is None:
                response = on_response(f.result())
            elif on_error is not None:
                response = on_response(on_error(exc))
            else:
                out.set_exception(exc)
                return
            out.set_result(response)
        except BaseException as err:  # passed on to the next layer out
            if not out.done():
                out.set_exception(err)

    reply.add_done_callback(done)
    return out


def build_chain(middlewares: Sequence[Middleware], endpoint: Next) -> Next:
    handler = endpoint
    for middleware in reversed(middlewares):
        handler = (lambda mw, nxt: lambda request: mw(request, nxt))(middleware, handler)
    return handler


_SANE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}\Z")


class RequestId:
    """Use the client's X-Request-ID when it is sane, else make one; echo it back."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    def __call__(self, request: Request, nxt: Next) -> Reply:
        given = request.headers.get(b"x-request-id")
        if given is not None and _SANE_ID.match(given):
            request.request_id = given.decode()
        else:
            request.request_id = f"{self._prefix}-{next(self._counter):x}"
        rid = request.request_id.encode()

        def tag(response: Response) -> Response:
            response.headers.append((b"X-Request-ID", rid))
            return response

        return after(nxt(request), tag)


class AccessLogger:
    """One line per request: method, route template, status, latency, bytes, request id."""

    def __init__(self, sink: AccessLog, observe: Callable[[Request, Response, float], None]
                 | None = None) -> None:
        self.sink = sink
        self.observe = observe

    def __call__(self, request: Request, nxt: Next) -> Reply:
        started = time.perf_counter()

        def record(response: Response) -> Response:
            elapsed = time.perf_counter() - started
            self.sink.request(request.method, request.route, response.status, elapsed * 1000,
                              len(response.body), request.request_id, request.client)
            if self.observe is not None:
                self.observe(request, response, elapsed)
            return response

        return after(nxt(request), record)


class Recovery:
    """Turns raftkv errors into their status, and anything else into a generic 500
    (the traceback is logged once, here, with the request id)."""

    def __call__(self, request: Request, nxt: Next) -> Reply:
        try:
            reply = nxt(request)
        except Exception as exc:
            return self._to_response(request, exc)
        return after(reply, lambda r: r, lambda exc: self._to_response(request, exc))

    @staticmethod
    def _to_response(request: Request, exc: BaseException) -> Response:
        if isinstance(exc, RaftKVError):
            response = error_response(request, exc)
            if response.status >= 500 and response.status not in (503, 504, 507):
                log.error("request failed: %s", exc, extra={"requestId": request.request_id})
            return response
        log.error("unhandled error", exc_info=exc, extra={"requestId": request.request_id,
                                                           "route": request.route})
        return Response(500, error_body(request, "internal error", "internal"))


class RenderErrors:
    """Handlers raise raftkv errors; here they become error responses (errors.py)."""

    def __call__(self, request: Request, nxt: Next) -> Reply:
        try:
            reply = nxt(request)
        except RaftKVError as exc:
            return error_response(request, exc)
        return after(reply, lambda r: r, lambda exc: self._render(request, exc))

    @staticmethod
    def _render(request: Request, exc: BaseException) -> Response:
        if isinstance(exc, RaftKVError):
            return error_response(request, exc)
        raise exc


class SecurityHeaders:
    """nosniff everywhere; key reads are never cached by intermediaries."""

    def __call__(self, request: Request, nxt: Next) -> Reply:
        def add(response: Response) -> Response:
            response.headers.append((b"X-Content-Type-Options", b"nosniff"))
            response.headers.append((b"Cache-Control", b"no-store"))
            return response

        return after(nxt(request), add)


class Cors:
    """CORS for configured origins: preflight answered with 204 and Max-Age."""

    ALLOW_METHODS = b"GET, PUT, POST, DELETE, HEAD, OPTIONS"
    ALLOW_HEADERS = b"Authorization, Content-Type, If-Match, If-None-Match, X-Request-ID"
    EXPOSE = b"ETag, X-Request-ID, X-Raftkv-Applied-Index, Retry-After"

    def __init__(self, origins: Sequence[str]) -> None:
        self.any = "*" in origins
        self.origins = {o.encode() for o in origins}

    def __call__(self, request: Request, nxt: Next) -> Reply:
        origin = request.headers.get(b"origin")
        if origin is None or not (self.any or origin in self.origins):
            return nxt(request)
        allow = [(b"Access-Control-Allow-Origin", origin), (b"Vary", b"Origin")]
        if request.method == b"OPTIONS" and b"access-control-request-method" in request.headers:
            return Response(204, headers=[
                *allow,
                (b"Access-Control-Allow-Methods", self.ALLOW_METHODS),
                (b"Access-Control-Allow-Headers", self.ALLOW_HEADERS),
                (b"Access-Control-Max-Age", b"600"),
            ])

        def add(response: Response) -> Response:
            response.headers += [*allow, (b"Access-Control-Expose-Headers", self.EXPOSE)]
            return response

        return after(nxt(request), add)
