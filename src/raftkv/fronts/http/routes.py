"""The HTTP API's handlers: the keys API, the seeds' APIs, and operations.

Each handler parses and validates its input (validation.py), makes one service call,
and renders the result. Writes return futures that resolve when the write is
durable and applied; reads usually return at once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, Final

import orjson

from raftkv.core.commands import Entry, Outcome, Result
from raftkv.deferred import Deferred, after, when
from raftkv.errors import ConditionFailed, InvalidArgument, NotFound, StorageError
from raftkv.fronts.http import validation as v
from raftkv.fronts.http.errors import HttpError
from raftkv.fronts.http.messages import (
    JSON,
    Reply,
    Request,
    Response,
    entry_json,
    json_response,
    text_field,
)
from raftkv.fronts.http.middleware import may_read, may_write, principal_of
from raftkv.fronts.http.router import Router
from raftkv.fronts.http.txn import TxnApi
from raftkv.service import backup
from raftkv.service.ports import Consistency, SnapshotStats
from raftkv.service.service import KVService

# (Final: compiled, each is a C static, where a plain module name or a module's
# attribute is a dict lookup per use; the enum member is read once, see OUTCOME_OK.)
OCTET: Final = b"application/octet-stream"
_PUT_FIELDS: Final = frozenset({"value", "ttlMs", "encoding"})
_VALUE: Final = frozenset({"value"})
_SEED_FIELDS: Final = frozenset({"key", "value"})
_ID: Final = frozenset({"id"})
_TO: Final = frozenset({"to"})
MAX_PAGE: Final = 1000
_STALE: Final = Consistency.STALE
_NO_LEASE: Final = Outcome.NO_LEASE
_Future: Final = asyncio.Future
_dumps: Final = orjson.dumps




def etag(entry: Entry) -> tuple[bytes, bytes]:
    return (b"ETag", b'"%d"' % entry.mod_revision)


def _answer(response: Response, _: object) -> Response:
    return response


def _not_found() -> HttpError:
    return HttpError(404, "key not found", "not_found")


def _condition_failed(result: Result) -> ConditionFailed:
    current = result.entry
    if current is None:
        return ConditionFailed("precondition failed: the key does not exist")
    return ConditionFailed(f"precondition failed: the key is at modRevision "
                           f"{current.mod_revision}")


class HttpApi:
    def __init__(self, service: KVService, readiness: Callable[[], tuple[bool, str]],
                 openapi: Callable[[], bytes], metrics: Callable[[], tuple[bytes, bytes]]) -> None:
        self.service = service
        self.readiness = readiness
        self.openapi = openapi
        self.metrics = metrics

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", "/v1/keys", self.list_keys)
        add("GET", "/v1/keys/{key...}", self.get_key)
        add("PUT", "/v1/keys/{key...}", self.put_key)
        add("DELETE", "/v1/keys/{key...}", self.delete_key)
        add("PUT", "/set", self.seed_set)
        add("GET", "/get", self.seed_get)
        add("DELETE", "/delete", self.seed_delete)
        add("POST", "/kv", self.kv_create)
        add("GET", "/kv/{key}", self.kv_get)
        add("DELETE", "/kv/{key}", self.kv_delete)
        add("GET", "/health", self.health)
        add("GET", "/livez", self.livez)
        add("GET", "/readyz", self.readyz)
        add("GET", "/openapi.json", self.openapi_json)
        add("GET", "/metrics", self.metrics_text)
        add("POST", "/v1/admin/snapshot", self.take_snapshot)
        add("GET", "/v1/admin/backup", self.backup)
        add("GET", "/v1/cluster/members", self.list_members)
        add("POST", "/v1/cluster/members", self.add_member)
        add("DELETE", "/v1/cluster/members/{id}", self.remove_member)
        add("POST", "/v1/cluster/transfer-leadership", self.transfer_leadership)
        add("POST", "/v1/txn", TxnApi(self.service).handle)

    # --- the keys API ----------------------------------------------------------------

    def get_key(self, request: Request) -> Reply:
        key = may_read(request, v.key_from_path(request.params["key"]))
        level = v.consistency(request)
        raw = request.headers.get(b"accept", b"").startswith(OCTET)
        found = self.service.get(key, level)
        if isinstance(found, Deferred):  # (the partial only when it has to wait)
            return when(found, functools.partial(self._render_entry, level, raw))
        return self._render_entry(level, raw, found)

    def _render_entry(self, level: Consistency, raw: bool, entry: Entry | None) -> Response:
        if entry is None:
            raise _not_found()
        headers = [etag(entry)]
        if level is _STALE:
            headers.append((b"X-Raftkv-Applied-Index",
                            str(self.service.applied_index).encode()))
        if raw:
            return Response(200, entry.value, OCTET, headers)
        return Response(200, _dumps(entry_json(entry)), JSON, headers)

    def put_key(self, request: Request) -> Reply:
        key = may_write(request, v.key_from_path(request.params["key"]))
        if v.media_type(request) == OCTET:
            value = request.body
            ttl_ms = v.query_int(request, "ttlMs", 0, 1, 2**62) or None
        else:
            v.require_json(request)
            data = v.json_object(request.body, _PUT_FIELDS, _VALUE)
            value = v.value_bytes(v.string_field(data, "value"), data.get("encoding"))
            ttl_ms = v.optional_int(data.get("ttlMs"), "ttlMs")
        cond, expected = v.condition(request)
        lease = v.query_int(request, "lease", 0, 1, 2**63 - 1) if request.query_string else 0
        future = self.service.put(key, value, ttl_ms=ttl_ms, cond=cond,
                                  expected_mod_revision=expected,
                                  request_id=v.idempotency_key(request), lease=lease)

        def render(result: Result) -> Response:
            if not result.ok:  # a put stores, fails its condition, or finds no lease
                if result.outcome is _NO_LEASE:
                    raise NotFound(f"lease {lease} does not exist")
                raise _condition_failed(result)
            assert result.entry is not None
            status = 201 if result.previous is None else 200
            return Response(status, _dumps(entry_json(result.entry, with_value=False)),
                            JSON, [etag(result.entry)])

        return when(future, render)

    def delete_key(self, request: Request) -> Reply:
        key = may_write(request, v.key_from_path(request.params["key"]))
        cond, expected = v.condition(request)
        if cond not in (cond.NONE, cond.MOD_REVISION, cond.EXISTS):
            raise InvalidArgument("DELETE honours If-Match only")
        future = self.service.delete(key, cond=cond, expected_mod_revision=expected,
                                     request_id=v.idempotency_key(request))

        def render(result: Result) -> Response:
            if result.ok:
                return Response(204)
            if result.outcome is Outcome.NOT_FOUND:
                raise _not_found()
            raise _condition_failed(result)

        return when(future, render)

    def list_keys(self, request: Request) -> Reply:
        query = request.query
        prefix = query.get("prefix", "").encode("utf-8", "surrogatepass")
        limit = v.query_int(request, "limit", 100, 1, MAX_PAGE)
        cursor = query.get("cursor")
        after = v.decode_cursor(cursor) if cursor else None
        principal = principal_of(request)

        def render(entries: list[Entry]) -> Response:
            more = len(entries) > limit
            page = entries[:limit]
            if not principal.sees_everything:  # never reveal keys outside the token's prefixes
                page = [e for e in page if principal.may_read(e.key)]
            return json_response(200, {
                "ok": True,
                "items": [entry_json(e) for e in page],
                "nextCursor": v.encode_cursor(page[-1].key) if more else None,
            })

        page_or_future = self.service.list_entries(prefix, after, limit + 1,
                                                   v.consistency(request))
        return when(page_or_future, render)

    # --- the seeds' APIs ---------------------------------------------------------------

    def _seed_body(self, request: Request) -> tuple[bytes, str]:
        v.require_json(request)
        data = v.json_object(request.body, _SEED_FIELDS, _SEED_FIELDS)
        key_text = v.string_field(data, "key")
        if not key_text:
            raise InvalidArgument("key must not be empty")
        return may_write(request, v.key_from_text(key_text)), v.string_field(data, "value")

    def seed_set(self, request: Request) -> Reply:
        key, value = self._seed_body(request)
        text = key.decode()

        def render(_: Result) -> Response:
            return json_response(200, {"ok": True, "message": "stored", "key": text})

        return when(self.service.put(key, value.encode()), render)

    def _seed_key_param(self, request: Request) -> bytes:
        text = request.query.get("key", "")
        if not text:
            raise InvalidArgument("the query parameter 'key' is required")
        return v.key_from_text(text)

    def seed_get(self, request: Request) -> Reply:
        return self._read_pair(may_read(request, self._seed_key_param(request)))

    def seed_delete(self, request: Request) -> Reply:
        key = may_write(request, self._seed_key_param(request))
        text = key.decode()

        def render(result: Result) -> Response:
            if result.outcome is Outcome.NOT_FOUND:
                raise _not_found()
            return json_response(200, {"ok": True, "message": "deleted", "key": text})

        return when(self.service.delete(key), render)

    def kv_create(self, request: Request) -> Reply:
        key, value = self._seed_body(request)
        text = key.decode()

        def render(_: Result) -> Response:
            return json_response(201, {"ok": True, "key": text, "value": value})

        return when(self.service.put(key, value.encode()), render)

    def kv_get(self, request: Request) -> Reply:
        return self._read_pair(may_read(request, v.key_from_path(request.params["key"])))

    def kv_delete(self, request: Request) -> Reply:
        key = may_write(request, v.key_from_path(request.params["key"]))

        def render(result: Result) -> Response:
            if result.outcome is Outcome.NOT_FOUND:
                raise _not_found()
            return Response(204)

        return when(self.service.delete(key), render)

    def _read_pair(self, key: bytes) -> Reply:
        def render(entry: Entry | None) -> Response:
            if entry is None:
                raise _not_found()
            out: dict[str, Any] = {"ok": True}
            text_field(entry.key, "key", out)
            text_field(entry.value, "value", out)
            return json_response(200, out)

        return when(self.service.get(key), render)

    # --- operations -------------------------------------------------------------------

    def health(self, request: Request) -> Response:
        s = self.service.status()
        return json_response(200, {
            "ok": True, "id": s.node_id, "state": s.role, "leaderId": s.leader_id,
            "term": s.term, "commitIndex": s.commit_index, "appliedIndex": s.applied_index,
            "lastHeartbeatAgoMs": s.last_heartbeat_ago_ms,
        })

    def livez(self, request: Request) -> Response:
        return json_response(200, {"ok": True})

    def readyz(self, request: Request) -> Response:
        ready, reason = self.readiness()
        if ready:
            return json_response(200, {"ok": True})
        return Response(503, _dumps({"ok": False, "message": reason, "code": "not_ready",
                                           "requestId": request.request_id.decode()}),
                        headers=[(b"Retry-After", b"1")])

    def openapi_json(self, request: Request) -> Response:
        return Response(200, self.openapi())

    def take_snapshot(self, request: Request) -> Reply:
        """Admin: write a snapshot now (and trim the WAL it covers)."""
        future = asyncio.ensure_future(self.service.take_snapshot())

        def render(stats: SnapshotStats | None) -> Response:
            if stats is None:
                raise StorageError("the snapshot could not be written; see the log")
            return json_response(200, {"ok": True, "index": stats.index,
                                       "sizeBytes": stats.size_bytes,
                                       "durationMs": round(stats.duration_s * 1000, 3)})

        return when(future, render)

    def backup(self, request: Request) -> Reply:
        """Admin: a consistent point-in-time backup of the data (``service/backup.py``)."""
        def render(taken: backup.Backup) -> Response:
            name = f"raftkv-{taken.index}{backup.SUFFIX}"
            return Response(200, taken.data, OCTET, [
                (b"X-Raftkv-Backup-Index", str(taken.index).encode()),
                (b"X-Raftkv-Backup-Sha256", taken.sha256.encode()),
                (b"Content-Disposition", f'attachment; filename="{name}"'.encode())])

        return after(backup.take(self.service), render)

    # --- cluster membership (admin) ---------------------------------------------------

    def list_members(self, request: Request) -> Response:
        s = self.service.status()
        return json_response(200, {"ok": True, "leaderId": s.leader_id,
                                   "members": self.service.members()})

    def add_member(self, request: Request) -> Reply:
        """Add a node as a learner; it becomes a voter by itself once caught up."""
        v.require_json(request)
        node_id = v.string_field(v.json_object(request.body, _ID, _ID), "id")
        added: Response = json_response(201, {"ok": True, "id": node_id, "role": "learner"})
        done: asyncio.Future[object] = self.service.change_membership("add-learner", node_id)
        return when(done, functools.partial(_answer, added))

    def remove_member(self, request: Request) -> Reply:
        node_id = v.text_from_path(request.params["id"], "id")
        removed: Response = json_response(200, {"ok": True, "id": node_id, "removed": True})
        done: asyncio.Future[object] = self.service.change_membership("remove", node_id)
        return when(done, functools.partial(_answer, removed))

    def transfer_leadership(self, request: Request) -> Response:
        v.require_json(request)
        to = v.string_field(v.json_object(request.body, _TO, _TO), "to")
        self.service.transfer_leadership(to)
        return json_response(202, {"ok": True, "to": to})

    def metrics_text(self, request: Request) -> Response:
        content_type, body = self.metrics()
        return Response(200, body, content_type)
