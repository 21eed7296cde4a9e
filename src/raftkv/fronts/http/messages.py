"""Request and Response objects, and how a response becomes bytes on the wire.

Handlers are plain functions of a :class:`Request` returning a :class:`Response`, or
a ``Deferred`` one (``raftkv/deferred.py``) when it waits on a commit or a read
barrier, so tests can drive the router in-process without sockets."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl

import orjson

from raftkv.core.commands import Entry
from raftkv.core.containers import KIND_NAMES, Kind
from raftkv.deferred import Deferred

STATUS_LINES: Final[dict[int, bytes]] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus
}
JSON: Final = b"application/json"
_perf_counter: Final = time.perf_counter


class Request:
    __slots__ = ("_query", "body", "client", "headers", "keep_alive", "method", "params", "path",
                 "principal", "query_string", "request_id", "route", "started")

    def __init__(self, method: bytes, path: bytes, query_string: bytes,
                 headers: dict[bytes, bytes], body: bytes = b"", client: str = "",
                 keep_alive: bool = True) -> None:
        self.method = method
        self.path = path  # raw, still percent-encoded
        self.query_string = query_string
        self.headers = headers  # lower-case names
        self.body = body
        self.client = client
        self.keep_alive = keep_alive
        self.request_id = b""  # X-Request-ID: sane ASCII, set by the request id middleware
        self.route = ""  # the matched route template: bounded labels for logs and metrics
        self.params: dict[str, bytes] = {}
        self.started = _perf_counter()  # when the headers were read
        self.principal: Any = None  # set by the auth middleware
        self._query: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, percent-decoded; the last of repeated names wins."""
        if self._query is None:
            try:
                self._query = dict(parse_qsl(self.query_string.decode("utf-8"),
                                             keep_blank_values=True, errors="strict"))
            except UnicodeDecodeError:
                from raftkv.errors import InvalidArgument

                raise InvalidArgument("the query string is not valid UTF-8") from None
        return self._query


class Response:
    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(self, status: int = 200, body: bytes = b"", content_type: bytes = JSON,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers if headers is not None else []


class Sink(Protocol):
    """Where a streamed body goes: the connection that sent the request."""

    def write(self, data: bytes) -> None:
        """Send ``data`` as the next part of the body."""

    def buffered_bytes(self) -> int:
        """How much written data the client has not yet taken (bounded by the caller)."""

    def end(self) -> None:
        """End the body (the connection closes)."""


class Stream(Response):
    """A response whose body follows as it is produced (Server-Sent Events), sent
    chunked. Once its head is on the wire the connection calls ``start(sink)``, which
    returns how to stop the producer; that is called once, when the client goes away
    or the server shuts down, unless the producer ended the body first."""

    __slots__ = ("start",)

    def __init__(self, start: Callable[[Sink], Callable[[], None]],
                 content_type: bytes = b"text/event-stream",
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(200, b"", content_type, headers)
        self.start = start


# A handler's answer: the response now, or once what it waits on is done.
Reply = Response | Deferred[Response]


def json_response(status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None
                  ) -> Response:
    return Response(status, orjson.dumps(data), JSON, headers)


def encode_response(response: Response, keep_alive: bool, head: bool, date: bytes) -> bytes:
    status = response.status
    headers = response.headers
    lines = b"".join([b"%s: %s\r\n" % (name, value) for name, value in headers])
    if not keep_alive:
        lines += b"Connection: close\r\n"
    status_line = STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status
    if status == 204 or status < 200:
        return b"%sDate: %s\r\n%s\r\n" % (status_line, date, lines)
    body = response.body
    return b"%sDate: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status_line, date, response.content_type, len(body), lines, b"" if head else body)


def encode_stream_head(response: Response, date: bytes) -> bytes:
    """A streamed response's status line and headers (its body follows in chunks)."""
    lines = b"".join([b"%s: %s\r\n" % (name, value) for name, value in response.headers])
    return b"%sDate: %s\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n%s\r\n" % (
        STATUS_LINES[response.status], date, response.content_type, lines)


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (empty ``data``: the last one)."""
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b"0\r\n\r\n"


def text_field(data: bytes, field: str, out: dict[str, Any]) -> None:
    """``out[field]``: the bytes as text, or base64 with a note saying so."""
    try:
        out[field] = data.decode("utf-8")
    except UnicodeDecodeError:
        out[field] = base64.b64encode(data).decode()
        out["encoding" if field == "value" else f"{field}Encoding"] = "base64"


def entry_json(entry: Entry, with_value: bool = True) -> dict[str, Any]:
    key, value, version = entry.key, entry.value, entry.version
    create_revision, mod_revision, expires_at_ms = (entry.create_revision, entry.mod_revision,
                                                    entry.expires_at_ms)
    typed = entry.kind
    if typed:  # a hash, list, set or sorted set (listed, never read, over HTTP)
        with_value = False
    if with_value:
        try:  # the common case first: text keys and values
            return {"ok": True, "key": key.decode("utf-8"), "value": value.decode("utf-8"),
                    "version": version, "createRevision": create_revision,
                    "modRevision": mod_revision, "expiresAtMs": expires_at_ms}
        except UnicodeDecodeError:
            pass
    out: dict[str, Any] = {"ok": True}
    text_field(key, "key", out)
    if with_value:
        text_field(value, "value", out)
    out["version"] = version
    out["createRevision"] = create_revision
    out["modRevision"] = mod_revision
    out["expiresAtMs"] = expires_at_ms
    if typed:
        out["type"] = KIND_NAMES[Kind(typed)].decode()
    return out
