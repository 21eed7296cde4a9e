"""The HTTP API as requests and answers, with no I/O: what the sync and the asyncio
clients share. A method of either builds a :class:`Call` here, sends it its own way,
and hands the answer back to the call's ``parse``; watch streams are decoded by
:class:`EventDecoder`."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from raftkv.client.errors import error_for

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    version: int
    create_revision: int
    mod_revision: int
    expires_at_ms: int | None


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    results: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change (``kind``: put, delete, expire, evict, typed, flush), or a
    ``progress`` event (``key`` empty)."""

    revision: int
    kind: str
    key: str = ""
    value: bytes | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """A held lock or a won election: its key, lease and fencing token."""

    name: str
    key: str
    lease: int
    token: int
    value: bytes = b""

    def fence(self) -> dict[str, Any]:
        """A transaction compare that holds only while this hold does."""
        return {"key": self.key, "target": "createRevision", "op": "=", "value": self.token}


@dataclass(slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[int, Any], T]
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    # a write whose answer was lost is sent again with the same key: applied once
    idempotent: bool = True
    headers: dict[str, str] = field(default_factory=dict)

    def with_key(self) -> Call[T]:
        self.headers["Idempotency-Key"] = uuid.uuid4().hex
        return self


def _quote(text: str) -> str:
    return quote(text, safe="")


def _value_json(value: bytes | str) -> dict[str, str]:
    if isinstance(value, str):
        return {"value": value}
    try:
        return {"value": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(value).decode(), "encoding": "base64"}


def _value_of(data: dict[str, Any], field_name: str = "value") -> bytes:
    raw = data[field_name]
    if data.get("encoding") == "base64":
        return base64.b64decode(raw)
    return str(raw).encode("utf-8")


def _ok(expected: tuple[int, ...], then: Callable[[Any], T]) -> Callable[[int, Any], T]:
    def parse(status: int, body: Any) -> T:
        if status not in expected:
            raise error_for(status, body)
        return then(body)

    return parse


def _key_value(body: dict[str, Any]) -> KeyValue:
    return KeyValue(body["key"], _value_of(body), body["version"], body["createRevision"],
                    body["modRevision"], body["expiresAtMs"])


def get(key: str, consistency: str = "linearizable") -> Call[KeyValue | None]:
    def parse(status: int, body: Any) -> KeyValue | None:
        if status == 404 and body.get("code") == "not_found":
            return None
        return _ok((200,), _key_value)(status, body)

    return Call("GET", f"/v1/keys/{_quote(key)}", parse, {"consistency": consistency})


def put(key: str, value: bytes | str, ttl_ms: int | None = None, lease: int | None = None
        ) -> Call[int]:
    body: dict[str, Any] = _value_json(value)
    if ttl_ms is not None:
        body["ttlMs"] = ttl_ms
    params = {"lease": lease} if lease else {}
    return Call("PUT", f"/v1/keys/{_quote(key)}", _ok((200, 201), lambda b: int(b["modRevision"])),
                params, body).with_key()


def delete(key: str) -> Call[bool]:
    def parse(status: int, body: Any) -> bool:
        if status == 404:
            return False
        return _ok((204,), lambda _: True)(status, body)

    return Call("DELETE", f"/v1/keys/{_quote(key)}", parse).with_key()


def list_page(prefix: str, cursor: str | None, limit: int
              ) -> Call[tuple[list[KeyValue], str | None]]:
    params: dict[str, Any] = {"prefix": prefix, "limit": limit}
    if cursor:
        params["cursor"] = cursor
    return Call("GET", "/v1/keys", _ok((200,), lambda b: (
        [_key_value(item) for item in b["items"]], b["nextCursor"])), params)


def txn(compare: list[dict[str, Any]], success: list[dict[str, Any]],
        failure: list[dict[str, Any]]) -> Call[TxnResult]:
    return Call("POST", "/v1/txn", _ok((200,), lambda b: TxnResult(
        b["succeeded"], b["revision"], b["results"])), body={
        "compare": compare, "success": success, "failure": failure}).with_key()


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/health", _ok((200,), _as_dict))


def lease_list() -> Call[list[int]]:
    return Call("GET", "/v1/leases", _ok((200,), lambda b: [int(i) for i in b["leases"]]))


def lease_grant(ttl_ms: int) -> Call[int]:
    return Call("POST", "/v1/leases", _ok((201,), lambda b: int(b["id"])),
                body={"ttlMs": ttl_ms}).with_key()


def lease_keep_alive(lease: int) -> Call[int]:
    return Call("POST", f"/v1/leases/{lease}/keepalive", _ok((200,), lambda b: int(b["ttlMs"])))


def lease_revoke(lease: int) -> Call[bool]:
    def parse(status: int, body: Any) -> bool:
        if status == 404:
            return False
        return _ok((204,), lambda _: True)(status, body)

    return Call("DELETE", f"/v1/leases/{lease}", parse).with_key()


def lease_time_to_live(lease: int) -> Call[dict[str, Any] | None]:
    def parse(status: int, body: Any) -> dict[str, Any] | None:
        if status == 404:
            return None
        return _ok((200,), _as_dict)(status, body)

    return Call("GET", f"/v1/leases/{lease}", parse)


def _as_dict(body: Any) -> dict[str, Any]:
    return dict(body)


def _hold(body: dict[str, Any]) -> Hold:
    return Hold(body["name"], body["key"], body["lease"], body["token"], _value_of(body))


Space = Literal["locks", "elections"]


def acquire(space: Space, name: str, lease: int, value: bytes | str = b"",
            wait_ms: int | None = None) -> Call[Hold]:
    """Lock or campaign (the server waits; the lease is the caller's, so a retry joins
    the same place in the queue)."""
    path = f"/v1/{space}/{_quote(name)}"
    if space == "locks":
        params: dict[str, Any] = {"lease": lease}
        if wait_ms is not None:
            params["waitMs"] = wait_ms
        return Call("POST", path, _ok((200,), _hold), params)
    body: dict[str, Any] = {**_value_json(value), "lease": lease}
    if wait_ms is not None:
        body["waitMs"] = wait_ms
    return Call("POST", path, _ok((200,), _hold), body=body)


def release(space: Space, hold: Hold) -> Call[bool]:
    return Call("DELETE", f"/v1/{space}/{_quote(hold.name)}",
                _ok((200,), lambda b: bool(b["released"])), {"lease": hold.lease, "token": hold.token})


def holder(space: Space, name: str) -> Call[Hold | None]:
    def parse(status: int, body: Any) -> Hold | None:
        if status == 404:
            return None
        return _ok((200,), _hold)(status, body)

    return Call("GET", f"/v1/{space}/{_quote(name)}", parse)


def proclaim(hold: Hold, value: bytes | str) -> Call[bool]:
    return Call("PUT", f"/v1/elections/{_quote(hold.name)}",
                _ok((200,), lambda b: bool(b["proclaimed"])),
                body={**_value_json(value), "lease": hold.lease, "token": hold.token})


def watch_path(key: str | None, prefix: str | None) -> tuple[str, dict[str, Any]]:
    if (key is None) == (prefix is None):
        raise ValueError("watch a key or a prefix")
    return "/v1/watch", ({"key": key} if key is not None else {"prefix": prefix})


class StreamEnded(Exception):
    """The server ended a watch stream (``name``: compacted or cut)."""

    def __init__(self, name: str, data: dict[str, Any]) -> None:
        super().__init__(f"{name}: {data.get('message', '')}")
        self.name = name
        self.data = data


class EventDecoder:
    """Server-Sent Events text to WatchEvents. ``last`` is the revision to resume
    after (None: not yet known)."""

    def __init__(self, last: int | None) -> None:
        self.last = last
        self.leader: Hold | None = None  # the last ``leader`` event's
        self._fields: dict[str, str] = {}

    def resume_headers(self) -> dict[str, str]:
        return {} if self.last is None else {"Last-Event-ID": str(self.last)}

    def feed_line(self, line: str) -> WatchEvent | None:
        if line:
            field_name, _, text = line.partition(":")
            self._fields[field_name] = text.removeprefix(" ")
            return None
        fields, self._fields = self._fields, {}
        if "event" not in fields:
            return None
        name = fields["event"]
        data = json.loads(fields.get("data", "{}"))
        if name == "leader":  # an election observer's stream
            self.leader = None if data["leader"] is None else _hold(data["leader"])
            return WatchEvent(0, "leader")
        if name in ("compacted", "cut"):
            if name == "cut":
                self.last = data["resumeAfter"]
            raise StreamEnded(name, data)
        revision = int(fields["id"])
        self.last = revision if self.last is None else max(self.last, revision)
        if name == "progress":
            return WatchEvent(revision, "progress")
        value: bytes | None = None
        if "value" in data:
            value = _value_of(data)
        elif "op" in data:
            value = str(data["op"]).encode()
        return WatchEvent(revision, name, str(data.get("key", "")), value)
