"""The string and key commands as a script calls them (``redis.call('SET', ...)``):
each builds the same op the RESP front sends for that command - Put, IncrBy,
Expire... - runs it at the script's entry through the state machine's own handler,
and answers what Redis answers. The options are parsed by ``args.py``, as the front
parses them. Not in ``BY_NAME``: the RESP front has its own handlers for these.
"""

from __future__ import annotations

from typing import Final

from raftkv.core.commands import (
    Append,
    Cond,
    Delete,
    Entry,
    Expire,
    ExpireWhen,
    IncrBy,
    IncrByFloat,
    MultiPut,
    Op,
    Outcome,
    Put,
    Read,
    Rename,
    Result,
)
from raftkv.core.containers import KIND_NAMES, Kind
from raftkv.core.glob import compile_glob, literal_prefix
from raftkv.core.numbers import parse_long_double
from raftkv.core.typed.args import (
    NOT_FLOAT,
    NOT_INTEGER,
    SYNTAX,
    deadline,
    expire_options,
    integer,
    pairs,
    set_options,
)
from raftkv.core.typed.context import WRONGTYPE, Ctx, OpError
from raftkv.core.typed.replies import OK, Reply, Status
from raftkv.core.typed.spec import TypedSpec, row


def _run(ctx: Ctx, op: Op) -> Result:
    assert ctx.machine is not None
    result = ctx.machine.run_op(ctx.index, op)
    if result.outcome is Outcome.WRONG_TYPE:
        raise OpError(WRONGTYPE)
    return result


def _entry(ctx: Ctx, key: bytes) -> Entry | None:
    assert ctx.machine is not None
    return ctx.machine.run_op(ctx.index, Read(key, b"", ctx.now_ms)).entry


def _string(ctx: Ctx, key: bytes) -> Entry | None:
    entry = _entry(ctx, key)
    if entry is not None and entry.kind:
        raise OpError(WRONGTYPE)
    return entry


def get(ctx: Ctx, args: list[bytes]) -> Reply:
    entry = _string(ctx, args[1])
    return entry.value if entry is not None else None


def mget(ctx: Ctx, args: list[bytes]) -> Reply:
    values: list[bytes | None] = []
    for key in args[1:]:
        entry = _entry(ctx, key)
        values.append(entry.value if entry is not None and not entry.kind else None)
    return values


def strlen(ctx: Ctx, args: list[bytes]) -> Reply:
    entry = _string(ctx, args[1])
    return len(entry.value) if entry is not None else 0


def set_(ctx: Ctx, args: list[bytes]) -> Reply:
    cond, keep_ttl, want_old, expires = set_options(args, ctx.now_ms)
    result = _put(ctx, Put(args[1], args[2], expires, keep_ttl, Cond(cond), 0, b"",
                           ctx.now_ms, want_old))
    if want_old:
        return result.previous.value if result.previous is not None else None
    return OK if result.ok else None


def _put(ctx: Ctx, op: Put) -> Result:
    result = _run(ctx, op)
    if result.ok:
        ctx.events.append((b"set", op.key, "$"))
    return result


def setnx(ctx: Ctx, args: list[bytes]) -> Reply:
    result = _put(ctx, Put(args[1], args[2], None, False, Cond.ABSENT, 0, b"", ctx.now_ms))
    return 1 if result.ok else 0


def _set_with_ttl(ctx: Ctx, args: list[bytes], unit: bytes, name: str) -> Reply:
    at = deadline(args[2], unit, ctx.now_ms, name)
    _put(ctx, Put(args[1], args[3], at, False, Cond.NONE, 0, b"", ctx.now_ms))
    return OK


def setex(ctx: Ctx, args: list[bytes]) -> Reply:
    return _set_with_ttl(ctx, args, b"EX", "setex")


def psetex(ctx: Ctx, args: list[bytes]) -> Reply:
    return _set_with_ttl(ctx, args, b"PX", "psetex")


def getset(ctx: Ctx, args: list[bytes]) -> Reply:
    result = _put(ctx, Put(args[1], args[2], None, False, Cond.NONE, 0, b"", ctx.now_ms, True))
    return result.previous.value if result.previous is not None else None


def getdel(ctx: Ctx, args: list[bytes]) -> Reply:
    result = _run(ctx, Delete(args[1], Cond.NONE, 0, b"", ctx.now_ms, True))
    if not result.ok or result.previous is None:
        return None
    ctx.events.append((b"del", args[1], "g"))
    return result.previous.value


def mset(ctx: Ctx, args: list[bytes]) -> Reply:
    if len(args) % 2 == 0:
        raise OpError(b"ERR wrong number of arguments for 'mset' command")
    items = tuple(pairs(args, 1))
    _run(ctx, MultiPut(items, False, b"", ctx.now_ms))
    for key, _ in items:
        ctx.events.append((b"set", key, "$"))
    return OK


def _incr(ctx: Ctx, key: bytes, delta: int) -> Reply:
    result = _run(ctx, IncrBy(key, delta, b"", ctx.now_ms))
    if result.outcome is Outcome.NOT_INTEGER:
        raise OpError(NOT_INTEGER)
    if result.outcome is Outcome.OVERFLOW:
        raise OpError(b"ERR increment or decrement would overflow")
    assert result.entry is not None
    ctx.events.append((b"incrby", key, "$"))
    return int(result.entry.value)


def incr(ctx: Ctx, args: list[bytes]) -> Reply:
    return _incr(ctx, args[1], 1)


def decr(ctx: Ctx, args: list[bytes]) -> Reply:
    return _incr(ctx, args[1], -1)


def incrby(ctx: Ctx, args: list[bytes]) -> Reply:
    return _incr(ctx, args[1], integer(args[2]))


def decrby(ctx: Ctx, args: list[bytes]) -> Reply:
    delta = integer(args[2])
    if delta == -(2**63):
        raise OpError(b"ERR decrement would overflow")
    return _incr(ctx, args[1], -delta)


def incrbyfloat(ctx: Ctx, args: list[bytes]) -> Reply:
    if parse_long_double(args[2]) is None:
        raise OpError(NOT_FLOAT)
    result = _run(ctx, IncrByFloat(args[1], args[2], b"", ctx.now_ms))
    if result.outcome is Outcome.NOT_FLOAT:
        raise OpError(NOT_FLOAT)
    if result.outcome is Outcome.OVERFLOW:
        raise OpError(b"ERR increment would produce NaN or Infinity")
    assert result.entry is not None
    ctx.events.append((b"incrbyfloat", args[1], "$"))
    return result.entry.value


def append(ctx: Ctx, args: list[bytes]) -> Reply:
    result = _run(ctx, Append(args[1], args[2], b"", ctx.now_ms))
    assert result.entry is not None
    ctx.events.append((b"append", args[1], "$"))
    return len(result.entry.value)


def del_(ctx: Ctx, args: list[bytes]) -> Reply:
    removed = 0
    for key in args[1:]:
        if _run(ctx, Delete(key, Cond.NONE, 0, b"", ctx.now_ms)).ok:
            removed += 1
            ctx.events.append((b"del", key, "g"))
    return removed


def exists(ctx: Ctx, args: list[bytes]) -> Reply:
    return sum(1 for key in args[1:] if _entry(ctx, key) is not None)


def type_(ctx: Ctx, args: list[bytes]) -> Reply:
    entry = _entry(ctx, args[1])
    return Status(KIND_NAMES[Kind(entry.kind)] if entry is not None else b"none")


def _expire(ctx: Ctx, args: list[bytes], unit: bytes, name: str) -> Reply:
    at, when = expire_options(args, unit, name, ctx.now_ms)
    return _set_deadline(ctx, args[1], at, when)


def _set_deadline(ctx: Ctx, key: bytes, at: int | None, when: ExpireWhen) -> Reply:
    result = _run(ctx, Expire(key, at, b"", ctx.now_ms, when))
    if not result.ok or not result.affected:
        return 0
    event = b"persist" if at is None else b"del" if result.entry is None else b"expire"
    ctx.events.append((event, key, "g"))
    return 1


def expire(ctx: Ctx, args: list[bytes]) -> Reply:
    return _expire(ctx, args, b"EX", "expire")


def pexpire(ctx: Ctx, args: list[bytes]) -> Reply:
    return _expire(ctx, args, b"PX", "pexpire")


def expireat(ctx: Ctx, args: list[bytes]) -> Reply:
    return _expire(ctx, args, b"EXAT", "expireat")


def pexpireat(ctx: Ctx, args: list[bytes]) -> Reply:
    return _expire(ctx, args, b"PXAT", "pexpireat")


def persist(ctx: Ctx, args: list[bytes]) -> Reply:
    return _set_deadline(ctx, args[1], None, ExpireWhen.ALWAYS)


def time_to_live(entry: Entry | None, now_ms: int, divisor: int) -> int:
    """TTL (``divisor`` 1000) or PTTL (1): -2 when absent, -1 without a deadline, else
    what is left, rounded as Redis rounds it (the RESP front answers with it too)."""
    if entry is None:
        return -2
    if entry.expires_at_ms is None:
        return -1
    left = max(0, entry.expires_at_ms - now_ms)
    return (left + divisor // 2) // divisor


def _ttl(ctx: Ctx, key: bytes, divisor: int) -> Reply:
    return time_to_live(_entry(ctx, key), ctx.now_ms, divisor)


def ttl(ctx: Ctx, args: list[bytes]) -> Reply:
    return _ttl(ctx, args[1], 1000)


def pttl(ctx: Ctx, args: list[bytes]) -> Reply:
    return _ttl(ctx, args[1], 1)


def keys(ctx: Ctx, args: list[bytes]) -> Reply:
    """The live keys matching a glob, in key order (the same on every replica)."""
    matches = compile_glob(args[1]).match
    keyspace = ctx.keyspace
    return [key for key in list(keyspace.iter_keys(literal_prefix(args[1])))
            if matches(key) and keyspace.get(key, ctx.now_ms) is not None]


def _rename(ctx: Ctx, args: list[bytes], only_if_absent: bool) -> Reply:
    result = _run(ctx, Rename(args[1], args[2], only_if_absent, b"", ctx.now_ms))
    if result.outcome is Outcome.NOT_FOUND:
        raise OpError(b"ERR no such key")
    if not result.ok:
        return 0
    if args[1] != args[2]:
        ctx.events += [(b"rename_from", args[1], "g"), (b"rename_to", args[2], "g")]
    return 1 if only_if_absent else OK


def rename(ctx: Ctx, args: list[bytes]) -> Reply:
    return _rename(ctx, args, False)


def renamenx(ctx: Ctx, args: list[bytes]) -> Reply:
    return _rename(ctx, args, True)


def time(ctx: Ctx, args: list[bytes]) -> Reply:
    """The entry's time, as TIME answers it (seconds, microseconds)."""
    return [b"%d" % (ctx.now_ms // 1000), b"%d" % (ctx.now_ms % 1000 * 1000)]


def ping(ctx: Ctx, args: list[bytes]) -> Reply:
    if len(args) > 2:
        raise OpError(b"ERR wrong number of arguments for 'ping' command")
    return args[1] if len(args) == 2 else Status(b"PONG")


def echo(ctx: Ctx, args: list[bytes]) -> Reply:
    return args[1]


COMMANDS: Final[list[TypedSpec]] = [
    row("get", 2, "readonly fast", get),
    row("mget", -2, "readonly fast", mget, 1, -1),
    row("strlen", 2, "readonly fast", strlen),
    row("set", -3, "write denyoom", set_),
    row("setnx", 3, "write denyoom fast", setnx),
    row("setex", 4, "write denyoom", setex),
    row("psetex", 4, "write denyoom", psetex),
    row("getset", 3, "write denyoom fast", getset),
    row("getdel", 2, "write fast", getdel),
    row("mset", -3, "write denyoom", mset, 1, -1, 2),
    row("incr", 2, "write denyoom fast", incr),
    row("decr", 2, "write denyoom fast", decr),
    row("incrby", 3, "write denyoom fast", incrby),
    row("decrby", 3, "write denyoom fast", decrby),
    row("incrbyfloat", 3, "write denyoom fast", incrbyfloat),
    row("append", 3, "write denyoom fast", append),
    row("del", -2, "write", del_, 1, -1),
    row("unlink", -2, "write fast", del_, 1, -1),
    row("exists", -2, "readonly fast", exists, 1, -1),
    row("type", 2, "readonly fast", type_),
    row("expire", -3, "write fast", expire),
    row("pexpire", -3, "write fast", pexpire),
    row("expireat", -3, "write fast", expireat),
    row("pexpireat", -3, "write fast", pexpireat),
    row("persist", 2, "write fast", persist),
    row("ttl", 2, "readonly fast", ttl),
    row("pttl", 2, "readonly fast", pttl),
    row("keys", 2, "readonly", keys, 0, 0),
    row("rename", 3, "write", rename, 1, 2),
    row("renamenx", 3, "write fast", renamenx, 1, 2),
    row("time", 1, "readonly fast", time, 0, 0),
    row("ping", -1, "fast", ping, 0, 0),
    row("echo", 2, "fast", echo, 0, 0),
]
__all__ = ["COMMANDS", "SYNTAX"]
