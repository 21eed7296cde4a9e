"""``POST /v1/txn``: an atomic transaction over HTTP (CONTRACT.md, DATA-MODEL.md
section 1), in etcd's shape - compares, then the success or the failure ops.

    {"compare": [{"key": "k", "target": "value", "op": "=", "value": "v"}, ...],
     "success": [{"op": "put", "key": "k", "value": "v", "ttlMs": 1000},
                 {"op": "delete", "key": "k"}, {"op": "get", "key": "k"},
                 {"op": "incr", "key": "n", "by": 1}, ...],
     "failure": [...]}

Targets: ``value`` (a string; ``encoding: "base64"`` for bytes), ``version``,
``createRevision``, ``modRevision`` (integers; 0 for an absent key), ``exists``
(true or false). Relations: ``=``, ``!=``, ``<``, ``>``. The answer:
``{"ok": true, "succeeded": bool, "revision": n, "results": [...]}``, a result per op
of the branch that ran. An op that fails (``incr`` on text) undoes the whole
transaction: 409 ``txn_failed`` naming the op. Keys and values follow the keys API's
rules; the token must be allowed to read every compared and read key and to write
every written one.
"""

from __future__ import annotations

from typing import Any, Final

from raftkv.core.commands import (
    Compare,
    Delete,
    Entry,
    IncrBy,
    Op,
    Outcome,
    Put,
    Read,
    Relation,
    Result,
    Target,
    TxnResult,
)
from raftkv.deferred import when
from raftkv.errors import InvalidArgument, TxnFailed
from raftkv.fronts.http import validation as v
from raftkv.fronts.http.messages import Reply, Request, Response, entry_json, json_response
from raftkv.fronts.http.middleware import may_read, may_write
from raftkv.service.service import KVService

_BODY: Final = frozenset({"compare", "success", "failure"})
_TARGETS: Final = {"value": Target.VALUE, "version": Target.VERSION,
                   "createRevision": Target.CREATE_REVISION,
                   "modRevision": Target.MOD_REVISION, "exists": Target.EXISTS}
_RELATIONS: Final = {"=": Relation.EQUAL, "!=": Relation.NOT_EQUAL, "<": Relation.LESS,
                     ">": Relation.GREATER}
_COMPARE_FIELDS: Final = frozenset({"key", "target", "op", "value", "encoding"})
_OP_FIELDS: Final = {"put": frozenset({"op", "key", "value", "encoding", "ttlMs"}),
                     "delete": frozenset({"op", "key"}), "get": frozenset({"op", "key"}),
                     "incr": frozenset({"op", "key", "by"})}
_FAILED: Final = {Outcome.NOT_INTEGER: "the value is not an integer",
                  Outcome.OVERFLOW: "the increment would overflow 64 bits"}


class TxnApi:
    def __init__(self, service: KVService) -> None:
        self.service = service

    def handle(self, request: Request) -> Reply:
        v.require_json(request)
        body = v.json_object(request.body, _BODY, frozenset())
        compares = [self._compare(request, item, i)
                    for i, item in enumerate(_list(body, "compare"))]
        success = [self._op(request, item, f"success[{i}]")
                   for i, item in enumerate(_list(body, "success"))]
        failure = [self._op(request, item, f"failure[{i}]")
                   for i, item in enumerate(_list(body, "failure"))]
        future = self.service.transaction(compares, success, failure,
                                           v.idempotency_key(request))

        def render(result: Result) -> Response:
            assert isinstance(result, TxnResult)
            ops = success if result.succeeded else failure
            if result.failed_at >= 0:
                op = ops[result.failed_at]
                outcome = result.results[result.failed_at].outcome
                raise TxnFailed(f"op {result.failed_at} ({_kind(op)} {_show(_key_of(op))}): "
                                f"{_FAILED.get(outcome, outcome.name.lower())}; nothing of "
                                f"the transaction was applied", result.failed_at)
            return json_response(200, {
                "ok": True, "succeeded": result.succeeded, "revision": result.revision,
                "results": [_result_json(op, r) for op, r in zip(ops, result.results,
                                                                 strict=True)]})
        return when(future, render)

    def _compare(self, request: Request, item: Any, i: int) -> Compare:
        where = f"compare[{i}]"
        fields = _object(item, where, _COMPARE_FIELDS)
        key = may_read(request, _key(fields, where))
        target = _TARGETS.get(_text(fields.get("target")))
        relation = _RELATIONS.get(_text(fields.get("op")))
        if target is None:
            raise InvalidArgument(f"{where}.target must be one of {', '.join(_TARGETS)}")
        if relation is None:
            raise InvalidArgument(f"{where}.op must be one of {', '.join(_RELATIONS)}")
        value = fields.get("value")
        if target is Target.VALUE:
            if not isinstance(value, str):
                raise InvalidArgument(f"{where}.value must be a string")
            return Compare(key, target, relation, 0, v.value_bytes(value,
                                                                   fields.get("encoding")))
        if target is Target.EXISTS:
            if not isinstance(value, bool):
                raise InvalidArgument(f"{where}.value must be true or false")
            return Compare(key, target, relation, int(value))
        number = v.optional_int(value, f"{where}.value")
        if number is None:
            raise InvalidArgument(f"{where}.value must be an integer")
        return Compare(key, target, relation, number)

    def _op(self, request: Request, item: Any, where: str) -> Op:
        kind = _text(item.get("op")) if isinstance(item, dict) else ""
        allowed = _OP_FIELDS.get(kind)
        if allowed is None:
            raise InvalidArgument(f"{where}.op must be one of {', '.join(_OP_FIELDS)}")
        fields = _object(item, where, allowed)
        service = self.service
        if kind == "get":
            return service.get_op(may_read(request, _key(fields, where)))
        key = may_write(request, _key(fields, where))
        if kind == "delete":
            return service.delete_op(key)
        if kind == "incr":
            by = v.optional_int(fields.get("by", 1), f"{where}.by")
            return service.incr_op(key, 1 if by is None else by)
        value = fields.get("value")
        if not isinstance(value, str):
            raise InvalidArgument(f"{where}.value must be a string")
        ttl_ms = v.optional_int(fields.get("ttlMs"), f"{where}.ttlMs")
        return service.put_op(key, v.value_bytes(value, fields.get("encoding")), ttl_ms)


def _text(value: Any) -> str:
    """A JSON string field's value, or "" for anything else (no dict is hashed)."""
    return value if isinstance(value, str) else ""


def _list(body: dict[str, Any], name: str) -> list[Any]:
    items = body.get(name, [])
    if not isinstance(items, list):
        raise InvalidArgument(f"the field {name!r} must be an array")
    return items


def _object(item: Any, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InvalidArgument(f"{where} must be an object")
    for name in item:
        if name not in allowed:
            raise InvalidArgument(f"{where} has an unknown field {name!r}")
    return item


def _key(fields: dict[str, Any], where: str) -> bytes:
    key = fields.get("key")
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"{where}.key must be a non-empty string")
    return v.key_from_text(key)


def _kind(op: Op) -> str:
    return {Put: "put", IncrBy: "incr", Read: "get"}.get(type(op), "delete")


def _key_of(op: Op) -> bytes:
    assert isinstance(op, Put | IncrBy | Read | Delete)  # (what _op makes)
    return op.key


def _show(key: bytes) -> str:
    return repr(key.decode(errors="replace"))


def _result_json(op: Op, result: Result) -> dict[str, Any]:
    kind = _kind(op)
    out: dict[str, Any] = {"op": kind, "key": _key_of(op).decode(errors="replace")}
    if kind == "delete":
        out["deleted"] = result.affected
        return out
    entry: Entry | None = result.entry
    if kind == "get":
        out["found"] = entry is not None
    if entry is None:
        return out
    body = entry_json(entry, with_value=kind != "put")
    del body["ok"]
    out.update(body)
    return out
