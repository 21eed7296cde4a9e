"""Leases, locks and elections over HTTP (CONTRACT.md; the recipes are
``service/coordination.py``).

    POST   /v1/leases                  {"ttlMs": 10000, "id": 7?}  -> 201 {"id", "ttlMs"}
    GET    /v1/leases                  -> {"leases": [ids]}
    GET    /v1/leases/{id}             -> {"id", "ttlMs", "remainingMs", "keys"}   404: none
    POST   /v1/leases/{id}/keepalive   -> {"id", "ttlMs"}                          404: gone
    DELETE /v1/leases/{id}             -> 204 (its keys deleted)                   404: none
    PUT    /v1/keys/{key}?lease={id}   attach a key (keys API)

    POST   /v1/locks/{name}?lease=&ttlMs=&waitMs=   -> {"name", "token", "lease", "key"}
    GET    /v1/locks/{name}                          -> the holder              404: free
    DELETE /v1/locks/{name}?lease=&token=            -> {"released": bool}

    POST   /v1/elections/{name}        {"value", "lease"?, "ttlMs"?, "waitMs"?}  campaign
    GET    /v1/elections/{name}        -> the leader {"value", "token", "lease", "key"}
    PUT    /v1/elections/{name}        {"value", "lease", "token"}   -> {"proclaimed": bool}
    DELETE /v1/elections/{name}?lease=&token=        resign             -> {"released": bool}
    GET    /v1/elections/{name}/observe              Server-Sent Events, one per leader

Without ``lease`` a lock or campaign is granted a lease of ``ttlMs`` (default 60 s),
named in the answer: keep it alive or it ends, and the hold with it. Waiting is
unbounded without ``waitMs``; when it passes, 408 ``wait_timed_out`` and nothing is
held. A token may be used on any write as ``POST /v1/txn``'s compare
``{"key": <key>, "target": "createRevision", "op": "=", "value": <token>}``.
Leases, locks and elections live under the key prefix ``_raftkv/``: a token must
be allowed to write there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import orjson

from raftkv.core.commands import Outcome, Result, TxnResult
from raftkv.core.history import Event
from raftkv.core.leases import MAX_TTL_MS, MIN_TTL_MS
from raftkv.deferred import Deferred, after, when
from raftkv.errors import ConditionFailed, InvalidArgument, NotFound
from raftkv.fronts.http import validation as v
from raftkv.fronts.http.errors import HttpError
from raftkv.fronts.http.messages import (
    Reply,
    Request,
    Response,
    Sink,
    Stream,
    json_response,
    text_field,
)
from raftkv.fronts.http.middleware import may_read, may_write
from raftkv.fronts.http.router import Router
from raftkv.service.coordination import (
    ELECTIONS,
    LOCKS,
    Coordinator,
    Holder,
    LeaseInfo,
)
from raftkv.service.ports import Consistency

T = TypeVar("T")

DEFAULT_TTL_MS: Final = 60_000
MAX_WAIT_MS: Final = 24 * 3600 * 1000
LEASE_SPACE: Final = b"_raftkv/leases/"
_GRANT: Final = frozenset({"ttlMs", "id"})
_CAMPAIGN: Final = frozenset({"value", "encoding", "lease", "ttlMs", "waitMs"})
_PROCLAIM: Final = frozenset({"value", "encoding", "lease", "token"})


class CoordinationApi:
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    def register(self, router: Router) -> None:
        add = router.add
        add("POST", "/v1/leases", self.grant)
        add("GET", "/v1/leases", self.list_leases)
        add("GET", "/v1/leases/{id}", self.lease)
        add("POST", "/v1/leases/{id}/keepalive", self.keep_alive)
        add("DELETE", "/v1/leases/{id}", self.revoke)
        add("POST", "/v1/locks/{name}", self.lock)
        add("GET", "/v1/locks/{name}", self.lock_holder)
        add("DELETE", "/v1/locks/{name}", self.unlock)
        add("POST", "/v1/elections/{name}", self.campaign)
        add("GET", "/v1/elections/{name}", self.leader)
        add("PUT", "/v1/elections/{name}", self.proclaim)
        add("DELETE", "/v1/elections/{name}", self.resign)
        add("GET", "/v1/elections/{name}/observe", self.observe)

    # --- leases ------------------------------------------------------------------

    def grant(self, request: Request) -> Reply:
        may_write(request, LEASE_SPACE)
        body = v.json_object(request.body or b"{}", _GRANT, frozenset({"ttlMs"}))
        ttl_ms = _int_field(body, "ttlMs")
        wanted = _int_field(body, "id", 1) if "id" in body else 0
        future = self.coordinator.grant(ttl_ms, wanted, v.idempotency_key(request))

        def render(result: Result) -> Response:
            if result.outcome is Outcome.CONDITION_FAILED:
                raise ConditionFailed(f"lease {wanted} already exists")
            return json_response(201, {"ok": True, "id": result.affected, "ttlMs": ttl_ms})

        return when(future, render)

    def list_leases(self, request: Request) -> Reply:
        may_read(request, LEASE_SPACE)
        return when(self.coordinator.leases(v.consistency(request)),
                    lambda ids: json_response(200, {"ok": True, "leases": ids}))

    def lease(self, request: Request) -> Reply:
        lease_id = _lease_in_path(request)
        may_read(request, LEASE_SPACE)

        def render(info: LeaseInfo | None) -> Response:
            if info is None:
                raise _no_lease(lease_id)
            keys: list[str] = []
            for key in info.keys:
                shown: dict[str, Any] = {}
                text_field(key, "key", shown)
                keys.append(shown["key"])
            return json_response(200, {"ok": True, "id": info.lease_id, "ttlMs": info.ttl_ms,
                                       "remainingMs": info.remaining_ms, "keys": keys})

        return when(self.coordinator.lease(lease_id, v.consistency(request)), render)

    def keep_alive(self, request: Request) -> Reply:
        lease_id = _lease_in_path(request)
        may_write(request, LEASE_SPACE)

        def render(result: Result) -> Response:
            if not result.ok:
                raise _no_lease(lease_id)
            return json_response(200, {"ok": True, "id": lease_id, "ttlMs": result.affected})

        return when(self.coordinator.keep_alive(lease_id), render)

    def revoke(self, request: Request) -> Reply:
        lease_id = _lease_in_path(request)
        may_write(request, LEASE_SPACE)

        def render(result: Result) -> Response:
            if not result.ok:
                raise _no_lease(lease_id)
            return Response(204)

        return when(self.coordinator.revoke(lease_id, v.idempotency_key(request)), render)

    # --- locks and elections -------------------------------------------------------

    def lock(self, request: Request) -> Reply:
        name = _name(request)
        may_write(request, LOCKS + name)
        query = request.query
        lease_id = v.query_int(request, "lease", 0, 1, 2**63 - 1)
        ttl_ms = v.query_int(request, "ttlMs", DEFAULT_TTL_MS, MIN_TTL_MS, MAX_TTL_MS)
        wait = v.query_int(request, "waitMs", -1, 0, MAX_WAIT_MS) if "waitMs" in query else -1
        return self._hold(LOCKS, name, b"", lease_id, ttl_ms, wait)

    def campaign(self, request: Request) -> Reply:
        name = _name(request)
        may_write(request, ELECTIONS + name)
        body = v.json_object(request.body, _CAMPAIGN, frozenset({"value"}))
        value = v.value_bytes(v.string_field(body, "value"), body.get("encoding"))
        lease_id = _int_field(body, "lease", 1) if "lease" in body else 0
        ttl_ms = _int_field(body, "ttlMs") if "ttlMs" in body else DEFAULT_TTL_MS
        wait = _int_field(body, "waitMs") if "waitMs" in body else -1
        return self._hold(ELECTIONS, name, value, lease_id, ttl_ms, wait)

    def _hold(self, space: bytes, name: bytes, value: bytes, lease_id: int, ttl_ms: int,
              wait_ms: int) -> Reply:
        coordinator = self.coordinator
        granted = coordinator.grant(ttl_ms) if not lease_id else None

        async def hold() -> Holder:
            own = lease_id
            if granted is not None:
                own = (await granted).affected
            try:
                return await coordinator.acquire(space, name, own, value,
                                                 None if wait_ms < 0 else wait_ms / 1000)
            except BaseException:
                if granted is not None:  # (a lease made for this hold goes with it)
                    await coordinator.revoke(own)
                raise

        def render(holder: Holder) -> Response:
            out = _holder_json(holder)
            if granted is not None:
                out["ttlMs"] = ttl_ms
            return json_response(200, out)

        return after(hold(), render)

    def lock_holder(self, request: Request) -> Reply:
        name = _name(request)
        may_read(request, LOCKS + name)
        return when(self.coordinator.holder(LOCKS, name, v.consistency(request)),
                    _render_holder)

    def leader(self, request: Request) -> Reply:
        name = _name(request)
        may_read(request, ELECTIONS + name)
        return when(self.coordinator.holder(ELECTIONS, name, v.consistency(request)),
                    _render_holder)

    def proclaim(self, request: Request) -> Reply:
        name = _name(request)
        may_write(request, ELECTIONS + name)
        body = v.json_object(request.body, _PROCLAIM, _PROCLAIM - {"encoding"})
        value = v.value_bytes(v.string_field(body, "value"), body.get("encoding"))
        future = self.coordinator.proclaim(name, _int_field(body, "lease"),
                                           _int_field(body, "token"), value)
        return after(future, lambda result: json_response(
            200, {"ok": True, "proclaimed": _succeeded(result)}))

    def unlock(self, request: Request) -> Reply:
        return self._release(request, LOCKS)

    def resign(self, request: Request) -> Reply:
        return self._release(request, ELECTIONS)

    def _release(self, request: Request, space: bytes) -> Reply:
        name = _name(request)
        may_write(request, space + name)
        if "lease" not in request.query or "token" not in request.query:
            raise InvalidArgument("give the query parameters 'lease' and 'token' of the hold")
        lease_id = v.query_int(request, "lease", 0, 1, 2**63 - 1)
        token = v.query_int(request, "token", 0, 1, 2**63 - 1)
        future = self.coordinator.release(space, name, lease_id, token)
        return after(future, lambda result: json_response(
            200, {"ok": True, "released": _succeeded(result)}))

    def observe(self, request: Request) -> Reply:
        """The election's leader now, then each time it (or its value) changes."""
        name = _name(request)
        may_read(request, ELECTIONS + name)
        coordinator = self.coordinator
        service = coordinator.service
        start = service.watch_start(None)

        def open_stream(after: int) -> Stream:
            def begin(sink: Sink) -> Callable[[], None]:
                observer = _Observer(sink, coordinator, name)
                observer.look()
                watch = service.watch_changes(ELECTIONS + name + b"/", False, after, observer,
                                              3600.0)
                return watch.cancel if watch is not None else _nothing

            return Stream(begin)

        return when(start, open_stream)


class _Observer:
    """An election observer's stream: a ``leader`` event whenever who leads, or what
    the leader proclaims, changes (``{"leader": null}`` when nobody does)."""

    def __init__(self, sink: Sink, coordinator: Coordinator, name: bytes) -> None:
        self.sink = sink
        self.coordinator = coordinator
        self.name = name
        self.shown: tuple[int, bytes] | None = (-1, b"")

    def look(self) -> None:
        holder = self.coordinator.holder(ELECTIONS, self.name, Consistency.STALE)
        assert not isinstance(holder, Deferred)  # (a stale read answers at once)
        seen = None if holder is None else (holder.token, holder.value)
        if seen != self.shown:
            self.shown = seen
            data = {"leader": None if holder is None else _holder_json(holder)}
            self.sink.write(b"event: leader\ndata: %s\n\n" % orjson.dumps(data))

    def changes(self, events: list[Event]) -> bool:
        self.look()
        return True

    def progress(self, revision: int) -> None:
        return None

    def compacted(self, compacted: int, current: int) -> None:
        self.sink.end()  # (the client observes again)




def _nothing() -> None:
    return None


def _succeeded(result: Result) -> bool:
    return isinstance(result, TxnResult) and result.succeeded


def _holder_json(holder: Holder) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": True, "name": holder.name.decode(), "token": holder.token,
                           "lease": holder.lease_id, "key": holder.key.decode()}
    text_field(holder.value, "value", out)
    return out


def _render_holder(holder: Holder | None) -> Response:
    if holder is None:
        raise HttpError(404, "nobody holds it", "not_found")
    return json_response(200, _holder_json(holder))


def _name(request: Request) -> bytes:
    text = v.text_from_path(request.params["name"], "name")
    if not text or "/" in text or len(text.encode()) > 512:
        raise InvalidArgument("a lock or election name is 1 to 512 bytes without '/'")
    return text.encode()


def _lease_in_path(request: Request) -> int:
    raw = request.params["id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise HttpError(404, "no such route (a lease id is a positive integer)", "not_found")
    return int(raw)


def _int_field(body: dict[str, Any], name: str, minimum: int = 0) -> int:
    value = v.optional_int(body.get(name), name)
    if value is None or not minimum <= value < 2**63:
        raise InvalidArgument(f"the field {name!r} must be an integer from {minimum} to "
                              f"2^63 - 1")
    return value


def _no_lease(lease_id: int) -> NotFound:
    return NotFound(f"lease {lease_id} does not exist (or ran out)")
