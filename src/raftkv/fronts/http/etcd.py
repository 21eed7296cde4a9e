"""etcd's v3 JSON gateway at ``/v3/`` (and ``/v3beta/``, ``/v3alpha/``), so clients
written for etcd's HTTP gateway - etcd3gw, Patroni's etcd3 DCS - work unchanged
(CONTRACT.md). Shapes follow etcd 3.4's gateway, recorded in
``tests/fixtures/etcd-gateway``: keys and values base64, 64-bit integers as strings,
the ``header`` on every answer, fields at their zero value left out, and errors as
``{"error", "message", "code"}`` with gRPC's codes and their HTTP statuses.

Routes: ``kv/range|put|deleterange|txn|compaction``, ``watch`` (a stream of JSON
lines), ``lease/grant|revoke|keepalive|timetolive|leases`` (``kv/lease/...`` too),
``lock/lock|unlock``, ``election/campaign|proclaim|leader|resign``,
``cluster/member/list``, ``maintenance/status``, ``auth/authenticate``, and
``GET /version``.

Where raftkv differs, it says so with an error rather than an answer that is wrong:
there is one version of each key, so ``revision`` in a range must be the current one
(older: "compacted"); ``kv/compaction`` changes nothing (the change history is
bounded by itself); ranges inside a transaction, the LEASE compare target, and
election ``observe`` are not served; "election: no leader" is a 404 (etcd: a 500). Every call maps onto the service: a lock here is
etcd's recipe (``<name>/<lease id in hex>``) on raftkv's locks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Any, Final, TypeVar

import orjson

from raftkv import __version__, errors
from raftkv.core.commands import (
    Compare,
    Delete,
    Entry,
    Op,
    Outcome,
    Put,
    Read,
    Relation,
    Result,
    Target,
    TxnResult,
)
from raftkv.core.history import DELETE, EVICT, EXPIRE, FLUSH, PUT, TYPED, Event
from raftkv.deferred import Deferred, after
from raftkv.fronts.http.messages import JSON, Reply, Request, Response, Sink, Stream
from raftkv.fronts.http.router import Router
from raftkv.service.coordination import Coordinator, Holder
from raftkv.service.ports import Consistency
from raftkv.service.service import KVService, common_prefix

T = TypeVar("T")

PREFIXES: Final = ("/v3", "/v3beta", "/v3alpha")
ETCD_VERSION: Final = "3.4.0"  # the gateway API raftkv speaks
# gRPC codes as etcd's gateway answers them with HTTP statuses
_STATUS: Final = {3: 400, 4: 504, 5: 404, 7: 403, 9: 412, 11: 400, 14: 503, 16: 401}
_BASE64: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_RELATIONS: Final = {"EQUAL": Relation.EQUAL, "NOT_EQUAL": Relation.NOT_EQUAL,
                     "LESS": Relation.LESS, "GREATER": Relation.GREATER}
_TARGETS: Final = {"VERSION": (Target.VERSION, "version"),
                   "CREATE": (Target.CREATE_REVISION, "create_revision"),
                   "MOD": (Target.MOD_REVISION, "mod_revision"),
                   "VALUE": (Target.VALUE, "value")}
_ALL: Final = b"\0"


class EtcdError(Exception):
    """An answer in etcd's error shape: gRPC ``code`` and etcd's message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _error_response(code: int, message: str) -> Response:
    return Response(_STATUS.get(code, 500), orjson.dumps(
        {"error": message, "message": message, "code": code}), JSON)


def _as_etcd(exc: BaseException) -> EtcdError:
    """raftkv's errors in etcd's words."""
    if isinstance(exc, EtcdError):
        return exc
    message = str(exc)
    if isinstance(exc, errors.NotFound):
        return EtcdError(5, "etcdserver: requested lease not found")
    if isinstance(exc, errors.Unavailable | errors.NotLeader):
        return EtcdError(14, "etcdserver: no leader")
    if isinstance(exc, errors.CommitTimeout):
        return EtcdError(14, "etcdserver: request timed out")
    if isinstance(exc, errors.WaitTimedOut):
        return EtcdError(4, "context deadline exceeded")
    if isinstance(exc, errors.TooLarge):
        return EtcdError(3, "etcdserver: request is too large")
    if isinstance(exc, errors.Forbidden):
        return EtcdError(7, "etcdserver: permission denied")
    if isinstance(exc, errors.Unauthenticated):
        return EtcdError(16, "etcdserver: user name is empty")
    if isinstance(exc, errors.RequestError):
        return EtcdError(3, message)
    raise exc  # (the recovery middleware answers anything else: a bug)


def _guarded(handler: Callable[[dict[str, Any]], Reply]) -> Callable[[Request], Reply]:
    """A gateway handler of the parsed body, answering errors in etcd's shape."""

    def handle(request: Request) -> Reply:
        try:
            body = orjson.loads(request.body or b"{}")
            if not isinstance(body, dict):
                raise EtcdError(3, "json: cannot unmarshal into the request message")
            reply = handler(body)
        except orjson.JSONDecodeError as exc:
            return _error_response(3, f"invalid JSON: {exc}")
        except (EtcdError, errors.RaftKVError) as exc:
            failed = _as_etcd(exc)
            return _error_response(failed.code, str(failed))
        if isinstance(reply, Response):
            return reply
        finish = reply.finish

        def answer(done: asyncio.Future[Any]) -> Response:
            try:
                return finish(done)
            except (EtcdError, errors.RaftKVError) as exc:
                failed = _as_etcd(exc)
                return _error_response(failed.code, str(failed))

        return Deferred(reply.future, answer)

    return handle


def _ok(data: dict[str, Any]) -> Response:
    return Response(200, orjson.dumps(data), JSON)


def _bytes(body: dict[str, Any], name: str) -> bytes:
    raw = body.get(name)
    if raw is None or raw == "":
        return b""
    if not isinstance(raw, str):
        raise EtcdError(3, f"json: cannot unmarshal {type(raw).__name__} into {name}")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        data = raw.encode("utf-8", "replace")
        at = next((i for i, byte in enumerate(data) if byte not in _BASE64), len(data))
        raise EtcdError(3, f"illegal base64 data at input byte {at}") from None


def _int(body: dict[str, Any], name: str) -> int:
    raw = body.get(name, 0)
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError
        value = int(raw)
    except ValueError:
        raise EtcdError(3, f"json: invalid value for {name}: {raw!r}") from None
    if not -(2**63) <= value < 2**63:
        raise EtcdError(3, f"json: {name} out of range")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _member_id(node_id: str) -> int:
    return int.from_bytes(hashlib.sha256(node_id.encode()).digest()[:8], "big")




class EtcdGateway:
    def __init__(self, service: KVService, coordinator: Coordinator,
                 watch_buffer_bytes: int) -> None:
        self.service = service
        self.coordinator = coordinator
        self.watch_buffer_bytes = watch_buffer_bytes  # unread by a watch's client: cancel

    def register(self, router: Router) -> None:
        router.add("GET", "/version", self.version)
        routes: dict[str, Callable[[dict[str, Any]], Reply]] = {
            "kv/range": self.range, "kv/put": self.put, "kv/deleterange": self.delete_range,
            "kv/txn": self.txn, "kv/compaction": self.compaction,
            "lease/grant": self.lease_grant, "lease/revoke": self.lease_revoke,
            "kv/lease/revoke": self.lease_revoke, "lease/keepalive": self.lease_keep_alive,
            "lease/timetolive": self.lease_time_to_live,
            "kv/lease/timetolive": self.lease_time_to_live, "lease/leases": self.lease_list,
            "kv/lease/leases": self.lease_list, "lock/lock": self.lock,
            "lock/unlock": self.unlock, "election/campaign": self.campaign,
            "election/proclaim": self.proclaim, "election/leader": self.leader,
            "election/resign": self.resign, "maintenance/status": self.status,
            "auth/authenticate": self.authenticate,
        }
        for prefix in PREFIXES:
            for path, handler in routes.items():
                router.add("POST", f"{prefix}/{path}", _guarded(handler))
            router.add("POST", f"{prefix}/cluster/member/list", self.members)
            router.add("POST", f"{prefix}/watch", self.watch)

    # --- the header every answer carries ------------------------------------------

    def header(self, revision: int | None = None) -> dict[str, str]:
        status = self.service.status()
        return {"cluster_id": str(_member_id("raftkv-cluster")),
                "member_id": str(_member_id(status.node_id)),
                "revision": str(status.applied_index if revision is None else revision),
                "raft_term": str(status.term)}

    def kv(self, entry: Entry, keys_only: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"key": _b64(entry.key),
                               "create_revision": str(entry.create_revision),
                               "mod_revision": str(entry.mod_revision),
                               "version": str(entry.version)}
        if entry.value and not keys_only:
            out["value"] = _b64(entry.value)
        lease = self.coordinator.lease_of(entry.key)
        if lease:
            out["lease"] = str(lease)
        return out

    # --- kv ----------------------------------------------------------------------

    def version(self, request: Request) -> Response:
        return _ok({"etcdserver": ETCD_VERSION, "etcdcluster": ETCD_VERSION,
                    "raftkv": __version__})

    def _range_of(self, body: dict[str, Any]) -> tuple[bytes, bytes | None]:
        key = _bytes(body, "key")
        if not key:
            raise EtcdError(3, "etcdserver: key is not provided")
        end = _bytes(body, "range_end")
        return key, (end or None)

    def range(self, body: dict[str, Any]) -> Reply:
        key, end = self._range_of(body)
        limit = _int(body, "limit")
        wanted = _int(body, "revision")
        level = Consistency.STALE if body.get("serializable") else Consistency.LINEARIZABLE
        found = self.service.range_entries(key, end, 0, level)

        def render(read: tuple[list[Entry], int, int]) -> Response:
            entries, count, revision = read
            if wanted > revision:
                raise EtcdError(11, "etcdserver: mvcc: required revision is a future revision")
            if 0 < wanted < revision:
                raise EtcdError(11, "etcdserver: mvcc: required revision has been compacted")
            entries = _filtered(body, entries)
            count = len(entries) if len(entries) != count else count
            if body.get("sort_order") or body.get("sort_target"):
                entries = _sorted(body, entries)
            out: dict[str, Any] = {"header": self.header(revision)}
            shown = entries[:limit] if limit > 0 else entries
            if shown and not body.get("count_only"):
                out["kvs"] = [self.kv(e, bool(body.get("keys_only"))) for e in shown]
            if limit > 0 and len(entries) > limit:
                out["more"] = True
            if count:
                out["count"] = str(count)
            return _ok(out)

        if isinstance(found, Deferred):
            return found.then(render)
        return render(found)

    def put(self, body: dict[str, Any]) -> Reply:
        key = _bytes(body, "key")
        if not key:
            raise EtcdError(3, "etcdserver: key is not provided")
        value = _bytes(body, "value")
        lease = _int(body, "lease")
        future = self.service.put(key, value, lease=lease)

        def render(result: Result) -> Response:
            if result.outcome is Outcome.NO_LEASE:
                raise EtcdError(5, "etcdserver: requested lease not found")
            out: dict[str, Any] = {"header": self.header(result.revision)}
            if body.get("prev_kv") and result.previous is not None:
                out["prev_kv"] = self.kv(result.previous)
            return _ok(out)

        return after(future, render)

    def delete_range(self, body: dict[str, Any]) -> Reply:
        key, end = self._range_of(body)

        async def delete() -> tuple[int, list[Entry], int]:
            found = self.service.range_entries(key, end, 0)
            entries, _, revision = found if isinstance(found, tuple) else await found
            if not entries:
                return 0, [], revision
            result = await self.service.transaction(
                [], [self.service.delete_op(e.key) for e in entries], [])
            assert isinstance(result, TxnResult)
            gone = [r.previous for r in result.results if r.ok and r.previous is not None]
            return len(gone), gone, result.revision

        def render(done: tuple[int, list[Entry], int]) -> Response:
            deleted, gone, revision = done
            out: dict[str, Any] = {"header": self.header(revision)}
            if deleted:
                out["deleted"] = str(deleted)
            if body.get("prev_kv") and gone:
                out["prev_kvs"] = [self.kv(e) for e in gone]
            return _ok(out)

        return after(delete(), render)

    def txn(self, body: dict[str, Any]) -> Reply:
        compares = [self._compare(item) for item in _list(body, "compare")]
        success = [self._op(item) for item in _list(body, "success")]
        failure = [self._op(item) for item in _list(body, "failure")]
        future = self.service.transaction(compares, [op for op, _ in success],
                                          [op for op, _ in failure])

        def render(result: Result) -> Response:
            assert isinstance(result, TxnResult)
            ran = success if result.succeeded else failure
            if result.failed_at >= 0:  # an op failed: nothing of the transaction applied
                outcome = result.results[result.failed_at].outcome
                if outcome is Outcome.NO_LEASE:
                    raise EtcdError(5, "etcdserver: requested lease not found")
                raise EtcdError(9, f"raftkv: op {result.failed_at} failed "
                                   f"({outcome.name.lower()}); nothing was applied")
            out: dict[str, Any] = {"header": self.header(result.revision)}
            if result.succeeded:
                out["succeeded"] = True
            responses = [self._op_response(op, shape, r, result.revision)
                         for (op, shape), r in zip(ran, result.results, strict=True)]
            if responses:
                out["responses"] = responses
            return _ok(out)

        return after(future, render)

    def _compare(self, item: Any) -> Compare:
        if not isinstance(item, dict):
            raise EtcdError(3, "json: a compare is an object")
        key = _bytes(item, "key")
        if item.get("range_end"):
            raise EtcdError(3, "raftkv: a compare on a key range is not supported")
        target = item.get("target", "VERSION")
        if target not in _TARGETS:
            raise EtcdError(3, f"raftkv: the compare target {target} is not supported")
        relation = _RELATIONS.get(item.get("result", "EQUAL"))
        if relation is None:
            raise EtcdError(3, f"json: unknown compare result {item.get('result')!r}")
        what, field = _TARGETS[target]
        if what is Target.VALUE:
            return Compare(key, what, relation, 0, _bytes(item, field))
        return Compare(key, what, relation, _int(item, field))

    def _op(self, item: Any) -> tuple[Op, str]:
        if not isinstance(item, dict) or len(item) != 1:
            raise EtcdError(3, "json: a request op holds exactly one request")
        (shape, request), = item.items()
        if not isinstance(request, dict):
            raise EtcdError(3, f"json: {shape} is an object")
        now_ms = self.service.clock.now_ms()
        if shape == "request_put":
            key = _bytes(request, "key")
            if not key:
                raise EtcdError(3, "etcdserver: key is not provided")
            return Put(key, _bytes(request, "value"), now_ms=now_ms,
                       lease=_int(request, "lease")), shape
        if shape in ("request_range", "request_delete_range"):
            key = _bytes(request, "key")
            if not key:
                raise EtcdError(3, "etcdserver: key is not provided")
            if request.get("range_end"):
                raise EtcdError(3, "raftkv: a key range inside a transaction is not supported")
            op: Op = Read(key, b"", now_ms) if shape == "request_range" else \
                Delete(key, now_ms=now_ms)
            return op, shape
        raise EtcdError(3, f"raftkv: {shape} inside a transaction is not supported")

    def _op_response(self, op: Op, shape: str, result: Result, revision: int
                     ) -> dict[str, Any]:
        inner: dict[str, Any] = {"header": {"revision": str(revision)}}
        if shape == "request_range":
            if result.entry is not None:
                inner["kvs"] = [self.kv(result.entry)]
                inner["count"] = "1"
            return {"response_range": inner}
        if shape == "request_delete_range":
            if result.ok:
                inner["deleted"] = "1"
            return {"response_delete_range": inner}
        return {"response_put": inner}

    def compaction(self, body: dict[str, Any]) -> Reply:
        revision = _int(body, "revision")
        if revision > self.service.applied_index:
            raise EtcdError(11, "etcdserver: mvcc: required revision is a future revision")
        return _ok({"header": self.header()})

    # --- leases ------------------------------------------------------------------

    def lease_grant(self, body: dict[str, Any]) -> Reply:
        ttl_s = _int(body, "TTL")
        if ttl_s <= 0:
            raise EtcdError(3, "etcdserver: lease TTL must be positive")
        future = self.coordinator.grant(ttl_s * 1000, _int(body, "ID"))

        def render(result: Result) -> Response:
            if result.outcome is Outcome.CONDITION_FAILED:
                raise EtcdError(9, "etcdserver: lease already exists")
            return _ok({"header": self.header(result.revision), "ID": str(result.affected),
                        "TTL": str(ttl_s)})

        return after(future, render)

    def lease_revoke(self, body: dict[str, Any]) -> Reply:
        def render(result: Result) -> Response:
            if not result.ok:
                raise EtcdError(5, "etcdserver: requested lease not found")
            return _ok({"header": self.header(result.revision)})

        return after(self.coordinator.revoke(_int(body, "ID")), render)

    def lease_keep_alive(self, body: dict[str, Any]) -> Reply:
        lease_id = _int(body, "ID")

        def render(result: Result) -> Response:
            out: dict[str, Any] = {"header": self.header(result.revision), "ID": str(lease_id)}
            if result.ok:
                out["TTL"] = str(result.affected // 1000)
            return _ok({"result": out})

        return after(self.coordinator.keep_alive(lease_id), render)

    def lease_time_to_live(self, body: dict[str, Any]) -> Reply:
        lease_id = _int(body, "ID")
        found = self.coordinator.lease(lease_id)

        def render(info: Any) -> Response:
            out: dict[str, Any] = {"header": self.header(), "ID": str(lease_id)}
            if info is None:
                out["TTL"] = "-1"
                return _ok(out)
            out["TTL"] = str(-(-info.remaining_ms // 1000))
            out["grantedTTL"] = str(info.ttl_ms // 1000)
            if body.get("keys") and info.keys:
                out["keys"] = [_b64(key) for key in info.keys]
            return _ok(out)

        return found.then(render) if isinstance(found, Deferred) else render(found)

    def lease_list(self, body: dict[str, Any]) -> Reply:
        found = self.coordinator.leases()

        def render(ids: list[int]) -> Response:
            out: dict[str, Any] = {"header": self.header()}
            if ids:
                out["leases"] = [{"ID": str(lease_id)} for lease_id in ids]
            return _ok(out)

        return found.then(render) if isinstance(found, Deferred) else render(found)

    # --- locks and elections (etcd's recipe: <name>/<lease id in hex>) -------------------

    def lock(self, body: dict[str, Any]) -> Reply:
        name = _bytes(body, "name")
        if not name:
            raise EtcdError(3, "lock: name is not provided")
        lease = _int(body, "lease")
        return after(self.coordinator.acquire_in(name + b"/", name, lease),
                    lambda held: _ok({"header": self.header(held.token),
                                      "key": _b64(held.key)}))

    def unlock(self, body: dict[str, Any]) -> Reply:
        key = _bytes(body, "key")
        future = self.service.delete(key)
        return after(future, lambda result: _ok({"header": self.header(result.revision)}))

    def campaign(self, body: dict[str, Any]) -> Reply:
        name = _bytes(body, "name")
        if not name:
            raise EtcdError(3, "election: name is not provided")
        work = self.coordinator.acquire_in(name + b"/", name, _int(body, "lease"),
                                           _bytes(body, "value"))
        return after(work, lambda held: _ok({"header": self.header(held.token),
                                            "leader": self._leader_key(held)}))

    def _leader_key(self, held: Holder) -> dict[str, str]:
        return {"name": _b64(held.name), "key": _b64(held.key), "rev": str(held.token),
                "lease": str(held.lease_id)}

    def _held(self, body: dict[str, Any]) -> tuple[bytes, int]:
        leader = body.get("leader")
        if not isinstance(leader, dict):
            raise EtcdError(3, "election: leader is not provided")
        return _bytes(leader, "key"), _int(leader, "rev")

    def proclaim(self, body: dict[str, Any]) -> Reply:
        key, rev = self._held(body)
        lease = self.coordinator.lease_of(key)
        future = self.service.transaction(
            [Compare(key, Target.CREATE_REVISION, Relation.EQUAL, rev)],
            [Put(key, _bytes(body, "value"), now_ms=self.service.clock.now_ms(), lease=lease)],
            [])

        def render(result: Result) -> Response:
            if not (isinstance(result, TxnResult) and result.succeeded):
                raise EtcdError(9, "election: not leader")
            return _ok({"header": self.header(result.revision)})

        return after(future, render)

    def leader(self, body: dict[str, Any]) -> Reply:
        name = _bytes(body, "name")
        if not name:
            raise EtcdError(3, "election: name is not provided")
        found = self.coordinator.holder_in(name + b"/", name)

        def render(held: Holder | None) -> Response:
            if held is None:  # (etcd: code 2, a 500; raftkv answers no 500 for this)
                raise EtcdError(5, "election: no leader")
            entry = Entry(held.key, held.value, 1, held.token, held.token, None)
            current = self.service.range_entries(held.key, None, 0, Consistency.STALE)
            if isinstance(current, tuple) and current[0]:
                entry = current[0][0]
            return _ok({"header": self.header(), "kv": self.kv(entry)})

        return found.then(render) if isinstance(found, Deferred) else render(found)

    def resign(self, body: dict[str, Any]) -> Reply:
        key, rev = self._held(body)
        return after(self.coordinator.release_key(key, rev),
                      lambda result: _ok({"header": self.header(result.revision)}))

    # --- cluster, maintenance, auth ----------------------------------------------------

    def members(self, request: Request) -> Response:
        """Every member, with the URL this node reaches it at (its own: the one the
        client used) as both its peer and its client URL: raftkv serves both on one
        port."""
        try:
            body = orjson.loads(request.body or b"{}")
        except orjson.JSONDecodeError as exc:
            return _error_response(3, f"invalid JSON: {exc}")
        if not isinstance(body, dict):
            return _error_response(3, "json: cannot unmarshal into the request message")
        own = "http://" + request.headers.get(b"host", b"127.0.0.1").decode("latin-1")
        members = []
        for member in self.service.members():
            url = member.get("url") or own
            entry: dict[str, Any] = {"ID": str(_member_id(member["id"])), "name": member["id"],
                                     "peerURLs": [url], "clientURLs": [url]}
            if member["role"] == "learner":
                entry["isLearner"] = True
            members.append(entry)
        header = self.header()
        del header["revision"]  # (etcd's member list has none)
        return _ok({"header": header, "members": members})

    def status(self, body: dict[str, Any]) -> Reply:
        status = self.service.status()
        stats = self.service.stats()
        out: dict[str, Any] = {"header": self.header(), "version": ETCD_VERSION,
                               "dbSize": str(stats.memory_bytes),
                               "raftIndex": str(status.commit_index),
                               "raftTerm": str(status.term),
                               "raftAppliedIndex": str(status.applied_index),
                               "dbSizeInUse": str(stats.memory_bytes)}
        if status.leader_id:
            out["leader"] = str(_member_id(status.leader_id))
        return _ok(out)

    def authenticate(self, body: dict[str, Any]) -> Reply:
        raise EtcdError(9, "etcdserver: authentication is not enabled")

    # --- watch -------------------------------------------------------------------

    def watch(self, request: Request) -> Reply:
        try:
            body = orjson.loads(request.body or b"{}")
            create = body.get("create_request") if isinstance(body, dict) else None
            if not isinstance(create, dict):
                raise EtcdError(3, "raftkv: a watch stream starts with a create_request")
            key, end = self._range_of(create)
            start = _int(create, "start_revision")
        except orjson.JSONDecodeError as exc:
            return _error_response(3, f"invalid JSON: {exc}")
        except EtcdError as exc:
            return _error_response(exc.code, str(exc))
        filters = create.get("filters") or []
        progress_s = 10.0 if create.get("progress_notify") else 86_400.0
        exact = end is None
        prefix = key if end is None else b"" if end == _ALL else common_prefix(key, end)
        begin = self.service.watch_start(start if start > 0 else None)

        def open_stream(after: int) -> Response:
            def run(sink: Sink) -> Callable[[], None]:
                stream = _EtcdWatch(self, sink, key, end, filters)
                watch = self.service.watch_changes(prefix, exact, after, stream, progress_s)
                return watch.cancel if watch is not None else _nothing

            return Stream(run, JSON)

        if isinstance(begin, Deferred):
            return begin.then(open_stream)
        return open_stream(begin)

    def event(self, change: Event) -> dict[str, Any]:
        revision, key, kind, value, create_revision, version = change
        if kind in (PUT, TYPED):
            kv: dict[str, Any] = {"key": _b64(key), "create_revision": str(create_revision),
                                  "mod_revision": str(revision), "version": str(version)}
            if kind == PUT and value:
                kv["value"] = _b64(value)
            lease = self.coordinator.lease_of(key)
            if lease:
                kv["lease"] = str(lease)
            return {"kv": kv}
        return {"type": "DELETE", "kv": {"key": _b64(key), "mod_revision": str(revision)}}


class _EtcdWatch:
    """One etcd watch stream: ``{"result": ...}`` JSON lines."""

    def __init__(self, gateway: EtcdGateway, sink: Sink, key: bytes, end: bytes | None,
                 filters: list[Any]) -> None:
        self.gateway = gateway
        self.sink = sink
        self.key = key
        self.end = end
        self.no_put = "NOPUT" in filters
        self.no_delete = "NODELETE" in filters
        self._send({"header": gateway.header(), "created": True})

    def _send(self, result: dict[str, Any]) -> None:
        self.sink.write(orjson.dumps({"result": result}) + b"\n")

    def _in_range(self, key: bytes) -> bool:
        if self.end is None:
            return key == self.key
        return key >= self.key and (self.end == _ALL or key < self.end)

    def changes(self, events: list[Event]) -> bool:
        if any(event[2] == FLUSH for event in events):
            self._cancel("raftkv: every key was deleted (FLUSHDB); read again and watch anew")
            return False
        if self.sink.buffered_bytes() > self.gateway.watch_buffer_bytes:
            self._cancel("raftkv: the client read too slowly; read again and watch anew")
            return False
        shown = []
        for event in events:
            if not self._in_range(event[1]):
                continue
            removal = event[2] in (DELETE, EXPIRE, EVICT)
            if (removal and self.no_delete) or (not removal and self.no_put):
                continue
            shown.append(self.gateway.event(event))
        if shown:
            self._send({"header": self.gateway.header(events[-1][0]), "events": shown})
        return True

    def progress(self, revision: int) -> None:
        self._send({"header": self.gateway.header(revision)})

    def compacted(self, compacted: int, current: int) -> None:
        self._send({"header": self.gateway.header(current), "canceled": True,
                    "compact_revision": str(compacted + 1)})
        self.sink.end()

    def _cancel(self, reason: str) -> None:
        self._send({"header": self.gateway.header(), "canceled": True, "cancel_reason": reason})
        self.sink.end()


def _list(body: dict[str, Any], name: str) -> list[Any]:
    items = body.get(name) or []
    if not isinstance(items, list):
        raise EtcdError(3, f"json: {name} is a list")
    return items


def _filtered(body: dict[str, Any], entries: list[Entry]) -> list[Entry]:
    bounds = [(_int(body, name), attr, low) for name, attr, low in (
        ("min_mod_revision", "mod_revision", True), ("max_mod_revision", "mod_revision", False),
        ("min_create_revision", "create_revision", True),
        ("max_create_revision", "create_revision", False)) if body.get(name)]
    if not bounds:
        return entries
    return [e for e in entries if all(
        (getattr(e, attr) >= bound) if low else (getattr(e, attr) <= bound)
        for bound, attr, low in bounds)]


def _sorted(body: dict[str, Any], entries: list[Entry]) -> list[Entry]:
    target = {"KEY": "key", "VERSION": "version", "CREATE": "create_revision",
              "MOD": "mod_revision", "VALUE": "value"}.get(body.get("sort_target") or "KEY")
    if target is None:
        raise EtcdError(3, f"json: unknown sort_target {body.get('sort_target')!r}")
    order = body.get("sort_order") or "NONE"
    if order not in ("NONE", "ASCEND", "DESCEND"):
        raise EtcdError(3, f"json: unknown sort_order {order!r}")
    if order == "NONE" and target == "key":
        return entries
    return sorted(entries, key=lambda e: getattr(e, target), reverse=order == "DESCEND")


def _nothing() -> None:
    return None
