"""Our HTTP/1.1 server: an asyncio.Protocol fed to httptools (ARCHITECTURE.md rule 7).

It owns what a production server must: keep-alive, pipelining (responses leave in
request order even when an earlier one waits on a commit), HEAD, ``Expect:
100-continue``, chunked bodies, and limits that answer before work is wasted:

    URI longer than max_uri_bytes ........................ 414, close
    headers larger than max_header_bytes ................. 431, close
    Content-Length over max_body_bytes (before the body) . 413, close
    Content-Length together with Transfer-Encoding ....... 400, close (smuggling)
    a transfer coding other than chunked ................. 501, close
    an HTTP/2 preface ("PRI * HTTP/2.0") ................. 505, close
    headers not complete within header_timeout_s ......... 408, close (slowloris)
    body not complete within body_timeout_s .............. 408, close
    idle keep-alive connection past idle_timeout_s ....... closed
    more than max_connections open ....................... 503, close

Timeouts are checked by one sweep per second over all connections rather than a
timer per request: setting a deadline is an attribute store on the hot path.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, Final, cast

import httptools
import orjson

from raftkv.config import HttpLimits
from raftkv.deferred import Deferred
from raftkv.fronts.http.messages import (
    Reply,
    Request,
    Response,
    Stream,
    encode_chunk,
    encode_response,
    encode_stream_head,
)
from raftkv.fronts.http.middleware import Pipeline
from raftkv.fronts.ordering import InOrder
from raftkv.service.auth import Identify
from raftkv.service.ports import AcceptPeer

log = logging.getLogger("raftkv.http")

# (Module constants on the request path are Final: compiled, they are C statics rather
# than a dict lookup per use.)
UPGRADE_PATH: Final = b"/v1/raft/stream"  # the only path that may leave HTTP (peer links)

_IDLE: Final = 0
_HEADERS: Final = 1
_BODY: Final = 2
_BUSY: Final = 3
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_SAFE: Final = frozenset({b"GET", b"HEAD", b"OPTIONS"})
_parse_url: Final = httptools.parse_url


class _Reject(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _plain_error(status: int, message: str, code: str) -> Response:
    body = orjson.dumps({"ok": False, "message": message, "code": code, "requestId": None})
    return Response(status, body)


class HttpServer:
    """Listeners, connections, the timeout sweep, and graceful draining."""

    def __init__(self, app: Pipeline, limits: HttpLimits, upgrade: AcceptPeer | None = None,
                 tls: ssl.SSLContext | None = None, identify: Identify | None = None) -> None:
        self.app = app
        # the limits, as fields of this compiled class: read on every request, they cost
        # a C load each rather than an attribute lookup on the (interpreted) dataclass
        self.max_connections = limits.max_connections
        self.max_uri_bytes = limits.max_uri_bytes
        self.max_header_bytes = limits.max_header_bytes
        self.max_body_bytes = limits.max_body_bytes
        self.header_timeout_s = limits.header_timeout_s
        self.body_timeout_s = limits.body_timeout_s
        self.idle_timeout_s = limits.idle_timeout_s
        self.connections: set[HttpConnection] = set()
        self.draining = False
        self.now = time.monotonic()
        self.date = email.utils.formatdate(usegmt=True).encode()
        self._servers: list[asyncio.AbstractServer] = []
        self.in_flight = 0  # requests dispatched and not yet answered
        self.upgrade = upgrade  # a cluster node's peer links arrive as upgrades
        self.tls = tls  # the listening context (tls.py): the port speaks TLS only
        self.identify = identify  # a TLS client's certificate -> its principal

    async def listen(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: HttpConnection(self), host, port,
                                          backlog=2048, reuse_address=True, ssl=self.tls)
        self._servers.append(server)
        port_bound: int = cast(Any, server).sockets[0].getsockname()[1]  # (a list on uvloop)
        return port_bound

    async def run(self) -> None:
        """Once a second, until cancelled: the Date header, and connections past their
        header, body or idle deadline closed (``sweep``)."""
        while True:
            await asyncio.sleep(1.0)
            self.sweep()

    def sweep(self) -> None:
        self.now = time.monotonic()
        self.date = email.utils.formatdate(usegmt=True).encode()
        for conn in list(self.connections):
            conn.check_deadline(self.now)

    def close_listeners(self) -> None:
        for server in self._servers:
            server.close()

    async def drain(self, timeout_s: float) -> bool:
        """Stop accepting, let in-flight requests finish (answered with Connection:
        close), close idle connections; True when every connection closed in time."""
        self.draining = True
        self.close_listeners()
        for conn in list(self.connections):
            conn.close_if_idle()
        deadline = time.monotonic() + timeout_s
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        drained = not self.connections
        for conn in list(self.connections):
            conn.abort()
        for server in self._servers:
            await server.wait_closed()
        return drained


class HttpConnection(asyncio.Protocol):
    __slots__ = ("_body", "_body_bytes", "_closing", "_deadline", "_header_bytes",
                 "_headers", "_over_capacity",
                 "_phase", "_principal", "_queue", "_request", "_stop_stream", "_upgrading", "_url",
                 "client",
                 "parser", "server", "transport")

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client = ""
        self._url = b""
        self._headers: dict[bytes, bytes] = {}  # lower-case names; the last repeat wins
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._request: Request | None = None
        self._queue: InOrder[Request, Response] = InOrder(self._execute, self._watch,
                                                           self._failed)
        self._over_capacity = False
        self._phase = _IDLE
        self._deadline = 0.0
        self._closing = False
        self._upgrading: Request | None = None
        self._stop_stream: Callable[[], None] | None = None  # while a Stream's body is sent
        self._principal: Any = None  # who the client's TLS certificate says it is

    # --- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        server = self.server
        if server.identify is not None:
            self._principal = server.identify(transport)
        server.connections.add(self)
        self._over_capacity = (len(server.connections) > server.max_connections
                               or server.draining)
        self._phase = _IDLE
        self._deadline = server.now + server.header_timeout_s

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.server.connections.discard(self)
        self.server.in_flight -= self._queue.clear()
        self._stop_streaming()

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()  # a client that does not read gets no more served

    def resume_writing(self) -> None:
        if self.transport is not None and not self._closing:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._closing or self._stop_stream is not None:
            return  # (nothing more is read while a body streams: it ends the connection)
        if self._over_capacity:  # answered once the request arrived, so the client reads it
            self._fail(_Reject(503, "too many connections; try again later", "unavailable"))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as failed:  # (mypyc types each name)
            reject = failed.__context__
            self._fail(reject if isinstance(reject, _Reject)
                       else _Reject(400, "malformed HTTP request", "bad_request"))
        except httptools.HttpParserUpgrade as upgrade:
            offset = int(upgrade.args[0]) if upgrade.args else len(data)
            if self._upgrading is not None:
                self._hand_over(self._upgrading, data[offset:])
                return
            # Any other Upgrade request (e.g. curl's h2c offer) was answered as plain
            # HTTP/1.1; anything pipelined after it goes to a fresh parser.
            self.parser = httptools.HttpRequestParser(self)
            if offset < len(data):
                self.data_received(data[offset:])
        except httptools.HttpParserError as exc:
            if self.parser.get_method() == b"PRI":
                self._fail(_Reject(505, "HTTP/2 is not supported here; use HTTP/1.1",
                                   "http_version_not_supported"))
            else:
                self._fail(_Reject(400, f"malformed HTTP request: {exc}", "bad_request"))

    # --- httptools callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._header_bytes = 0
        if self._phase == _IDLE:
            self._phase = _HEADERS
            server = self.server
            self._deadline = server.now + server.header_timeout_s

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.server.max_uri_bytes:
            raise _Reject(414, "the request URI is too long", "uri_too_long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.server.max_header_bytes:
            raise _Reject(431, "the request headers are too large", "headers_too_large")
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        headers = self._headers
        if (b"content-length" in headers or b"transfer-encoding" in headers
                or b"expect" in headers):
            self._check_body_headers(headers)
        url = self._url
        path, _, query = url.partition(b"?")
        if path[:1] != b"/":
            parsed = _parse_url(url) if path != b"*" else None
            path = (parsed.path or b"/") if parsed else b"*"
            query = (parsed.query or b"") if parsed else b""
        self._request = request = Request(self.parser.get_method(), path, query, headers, b"",
                                          self.client)
        if self._principal is not None:
            request.principal = self._principal
        self._phase = _BODY
        server = self.server
        self._deadline = server.now + server.body_timeout_s

    def _check_body_headers(self, headers: dict[bytes, bytes]) -> None:
        limit = self.server.max_body_bytes
        te = headers.get(b"transfer-encoding")
        if te is not None:
            if b"content-length" in headers:
                raise _Reject(400, "Content-Length and Transfer-Encoding together",
                              "bad_request")
            if te.strip().lower() != b"chunked":
                raise _Reject(501, "only the chunked transfer coding is supported",
                              "not_implemented")
        length = headers.get(b"content-length")
        if length is not None and int(length) > limit:
            raise _Reject(413, f"the body is over {limit} bytes", "too_large")
        if headers.get(b"expect", b"").lower() == b"100-continue" and self.transport is not None:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        limit = self.server.max_body_bytes
        if self._body_bytes > limit:
            raise _Reject(413, f"the body is over {limit} bytes", "too_large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = self._request
        assert request is not None
        self._request = None
        if self._body:
            request.body = b"".join(self._body) if len(self._body) > 1 else self._body[0]
            self._body = []
            self._body_bytes = 0
        request.keep_alive = self.parser.should_keep_alive()
        self._phase = _BUSY
        if (request.path == UPGRADE_PATH and self.server.upgrade is not None
                and self.parser.should_upgrade() and not self._queue):
            self._upgrading = request  # taken over when httptools raises its Upgrade
            return
        self._dispatch(request)

    def _hand_over(self, request: Request, leftover: bytes) -> None:
        assert self.transport is not None and self.server.upgrade is not None
        refusal = self.server.upgrade(request.headers, self.transport, leftover)
        if refusal is not None:
            status, reason = refusal
            self._upgrading = None
            self._fail(_Reject(status, reason, "conflict" if status == 409 else
                               "unauthenticated" if status == 401 else "bad_request"))
            return
        self._closing = True  # the connection is no longer HTTP: forget it here
        self.server.connections.discard(self)

    # --- responses, in request order ----------------------------------------------

    def _dispatch(self, request: Request) -> None:
        """Run a request, or queue it behind earlier ones still in progress, by the
        pipelining rule of ``fronts/ordering.py`` (responses in request order; a read
        behind an unfinished write of this connection waits its turn)."""
        queue = self._queue
        self.server.in_flight += 1
        write = request.method not in _SAFE
        if queue.must_wait(write):
            queue.wait_turn(request, write)
            return
        reply = self._execute(request)
        if not queue and isinstance(reply, Response):
            self.server.in_flight -= 1
            self._send(request, reply)
            return
        queue.add(request, reply, write)
        if isinstance(reply, Deferred):
            self._watch(reply)
        else:
            self._flush()

    def _execute(self, request: Request) -> Reply:
        try:
            return self.server.app.handle(request)
        except Exception:  # the recovery middleware should have answered; be safe anyway
            return self._internal_error()

    @staticmethod
    def _internal_error() -> Response:
        log.exception("unhandled error outside the middleware chain")
        return _plain_error(500, "internal error", "internal")

    def _failed(self, request: Request, exc: BaseException) -> Response:
        return self._internal_error()  # (Recovery should have answered)

    def _watch(self, reply: Deferred[Response]) -> None:
        reply.future.add_done_callback(self._flush)

    def _flush(self, _: object = None) -> None:
        for entry in self._queue.ready():
            self.server.in_flight -= 1
            if not self._closing:
                self._send(entry.request, entry.reply)

    def _send(self, request: Request, response: Response) -> None:
        transport = self.transport
        if transport is None or self._closing or self._stop_stream is not None:
            return
        server = self.server
        if isinstance(response, Stream) and request.method != b"HEAD":
            self._stream(response)
            return
        keep = request.keep_alive and not server.draining
        transport.write(encode_response(response, keep, request.method == b"HEAD", server.date))
        if not keep:
            self._closing = True
            transport.close()
        elif not self._queue and self._phase == _BUSY:
            self._phase = _IDLE
            self._deadline = server.now + server.idle_timeout_s

    def _stream(self, response: Stream) -> None:
        """Send a Stream's head, then its body as its producer writes it; the connection
        stays busy (no idle timeout) until the body ends, and then closes."""
        assert self.transport is not None
        response.headers.append((b"Connection", b"close"))
        self.transport.write(encode_stream_head(response, self.server.date))
        self._stop_stream = response.start(self)

    # --- a Stream's sink ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self._closing:
            self.transport.write(encode_chunk(data))

    def buffered_bytes(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def end(self) -> None:
        """The producer ended the body: the last chunk, then close."""
        self._stop_stream = None
        if self.transport is not None and not self._closing:
            self._closing = True
            self.transport.write(encode_chunk(b""))
            self.transport.close()

    def _stop_streaming(self) -> None:
        stop, self._stop_stream = self._stop_stream, None
        if stop is not None:
            stop()

    def _fail(self, reject: _Reject) -> None:
        """Answer a request we will not serve, then close: the stream cannot be trusted."""
        if self.transport is None or self._closing:
            return
        self._closing = True
        body = _plain_error(reject.status, str(reject), reject.code)
        self.transport.write(encode_response(body, False, False, self.server.date))
        self.transport.close()

    # --- timeouts and draining --------------------------------------------------------

    def check_deadline(self, now: float) -> None:
        if self._closing or now < self._deadline or self._phase == _BUSY:
            return
        if self._phase == _IDLE:
            self.abort()
        elif self._phase == _HEADERS:
            self._fail(_Reject(408, "the request headers took too long", "request_timeout"))
        else:
            self._fail(_Reject(408, "the request body took too long", "request_timeout"))

    def close_if_idle(self) -> None:
        if self._stop_stream is not None:  # a stream ends when the server drains
            self._stop_streaming()
            self.end()
        elif self._phase == _IDLE and not self._queue:
            self.abort()

    def abort(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()
