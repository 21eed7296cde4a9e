"""Request and Response objects, and how a response becomes bytes on the wire.

Handlers are plain functions of a :class:`Request` returning a :class:`Response`, or
a ``Deferred`` one (``raftkv/deferred.py``) when it waits on a commit or a read
barrier, so tests can drive the router in-process without sockets."""

from __future__ import annotations

import base64
import time
from http import HTTPStatus
from typing import Any, Final
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
