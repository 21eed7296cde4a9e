"""The string family: GET, SET and its options, MGET/MSET, INCR and friends, APPEND,
STRLEN. Relative expiry times become absolute deadlines here, before the command is
logged (ARCHITECTURE.md rule 1)."""

from __future__ import annotations

import functools
from typing import Final

from raftkv.core.commands import Cond, Entry, Outcome, Result
from raftkv.core.numbers import parse_long_double
from raftkv.core.typed.args import deadline, set_options
from raftkv.core.typed.context import OpError
from raftkv.deferred import Deferred
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.client import Client
from raftkv.fronts.resp.spec import (
    SYNTAX,
    WRONG_INT,
    CommandError,
    Reply,
    later,
    spec,
    to_int,
)

NOT_FLOAT: Final = "ERR value is not a valid float"
BULK_HEADERS: Final = [b"$%d\r\n" % size for size in range(4096)]


def get(client: Client, args: list[bytes]) -> Reply:
    value = client.service.get_value(args[1], client.consistency)
    if isinstance(value, Deferred):  # (the partial only when it has to wait)
        return later(value, functools.partial(value_reply, client))
    return value_reply(client, value)


def value_reply(client: Client, value: bytes | None) -> bytes:
    stats = client.state.stats
    if value is None:
        stats.keyspace_misses += 1
        return client.enc.NIL
    stats.keyspace_hits += 1
    return b"$%d\r\n%s\r\n" % (len(value), value)


def values_reply(client: Client, values: list[bytes | None]) -> bytes:
    """The bulk strings of many values, without the array header (a pipeline's run of
    GETs is answered with this alone, MGET puts a header before it)."""
    stats, nil = client.state.stats, client.enc.NIL
    out: list[bytes] = []  # (out.append, not a bound local: 3.11 specializes the call)
    misses = 0
    for value in values:
        if value is None:
            out.append(nil)
            misses += 1
        else:
            size = len(value)
            out.append(BULK_HEADERS[size] if size < len(BULK_HEADERS) else b"$%d\r\n" % size)
            out.append(value)
            out.append(b"\r\n")
    stats.keyspace_misses += misses
    stats.keyspace_hits += len(values) - misses
    return b"".join(out)


def ok(_: object) -> bytes:
    return p.OK


def set_(client: Client, args: list[bytes]) -> Reply:
    key, value = args[1], args[2]
    if len(args) == 3:  # plain SET: joins this loop turn's batch of plain puts
        return later(client.service.put_many([(key, value)]), ok)
    try:
        cond, keep_ttl, want_old, expires = set_options(args, client.service.clock.now_ms())
    except OpError as refused:
        raise CommandError.of(refused) from None
    future = client.service.put(key, value, expires_at_ms=expires, keep_ttl=keep_ttl,
                                cond=Cond(cond), string_only=want_old)

    def render(result: Result) -> bytes:
        if want_old:
            previous = result.previous
            return client.enc.bulk(previous.value if previous else None)
        return p.OK if result.ok else client.enc.NIL
    return later(future, render)


def _deadline(raw: bytes, unit: bytes, now_ms: int, name: str) -> int:
    try:
        return deadline(raw, unit, now_ms, name)
    except OpError as refused:
        raise CommandError.of(refused) from None


def setnx(client: Client, args: list[bytes]) -> Reply:
    future = client.service.put(args[1], args[2], cond=Cond.ABSENT)
    return later(future, lambda r: p.ONE if r.ok else p.ZERO)


def getset(client: Client, args: list[bytes]) -> Reply:
    future = client.service.put(args[1], args[2], string_only=True)
    return later(future, lambda r: client.enc.bulk(r.previous.value if r.previous else None))


def getdel(client: Client, args: list[bytes]) -> Reply:
    future = client.service.delete(args[1], string_only=True)
    return later(future, lambda r: client.enc.bulk(r.previous.value if r.ok and r.previous
                                                   else None))


def mget(client: Client, args: list[bytes]) -> Reply:
    keys = args[1:]
    header = b"*%d\r\n" % len(keys)
    return later(client.service.get_values(keys, client.consistency),
                 lambda values: header + values_reply(client, values))


def mset(client: Client, args: list[bytes]) -> Reply:
    if len(args) % 2 == 0:
        raise CommandError("ERR wrong number of arguments for 'mset' command")
    items = list(zip(args[1::2], args[2::2], strict=True))
    return later(client.service.multi_put(items), ok)


def msetnx(client: Client, args: list[bytes]) -> Reply:
    if len(args) % 2 == 0:
        raise CommandError("ERR wrong number of arguments for 'msetnx' command")
    items = list(zip(args[1::2], args[2::2], strict=True))
    future = client.service.multi_put(items, only_if_none_exist=True)
    return later(future, lambda r: p.ONE if r.ok else p.ZERO)


def _incr(client: Client, key: bytes, delta: int) -> Reply:
    def render(result: Result) -> bytes:
        if result.outcome is Outcome.NOT_INTEGER:
            raise CommandError(WRONG_INT)
        if result.outcome is Outcome.OVERFLOW:
            raise CommandError("ERR increment or decrement would overflow")
        assert result.entry is not None
        return b":%s\r\n" % result.entry.value
    return later(client.service.incr_by(key, delta), render)


def incr(client: Client, args: list[bytes]) -> Reply:
    return _incr(client, args[1], 1)


def decr(client: Client, args: list[bytes]) -> Reply:
    return _incr(client, args[1], -1)


def incrby(client: Client, args: list[bytes]) -> Reply:
    return _incr(client, args[1], to_int(args[2]))


def decrby(client: Client, args: list[bytes]) -> Reply:
    delta = to_int(args[2])
    if delta == -(2**63):
        raise CommandError("ERR decrement would overflow")
    return _incr(client, args[1], -delta)


def append(client: Client, args: list[bytes]) -> Reply:
    def render(result: Result) -> bytes:
        assert result.entry is not None
        return p.integer(len(result.entry.value))
    return later(client.service.append(args[1], args[2]), render)


def strlen(client: Client, args: list[bytes]) -> Reply:
    return later(client.service.get(args[1], client.consistency),
                 lambda e: p.integer(len(e.value) if e else 0))


def _set_with_ttl(client: Client, args: list[bytes], unit: bytes, name: str) -> Reply:
    """SETEX key seconds value, PSETEX key milliseconds value."""
    deadline = _deadline(args[2], unit, client.service.clock.now_ms(), name)
    return later(client.service.put(args[1], args[3], expires_at_ms=deadline), ok)


def setex(client: Client, args: list[bytes]) -> Reply:
    return _set_with_ttl(client, args, b"EX", "setex")


def psetex(client: Client, args: list[bytes]) -> Reply:
    return _set_with_ttl(client, args, b"PX", "psetex")


def getex(client: Client, args: list[bytes]) -> Reply:
    """GETEX key [EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST]: the value, and the
    key's deadline changed in the same command (one log entry, as Redis does it)."""
    if len(args) == 2:
        return get(client, args)
    option = args[2].upper()
    if option == b"PERSIST" and len(args) == 3:
        deadline = None
    elif option in (b"EX", b"PX", b"EXAT", b"PXAT") and len(args) == 4:
        deadline = _deadline(args[3], option, client.service.clock.now_ms(), "getex")
    else:
        raise CommandError(SYNTAX)
    future = client.service.expire(args[1], deadline, string_only=True)
    return later(future, lambda r: client.enc.bulk(r.previous.value if r.previous else None))


def getrange(client: Client, args: list[bytes]) -> Reply:
    """GETRANGE key start end, with Redis's index rules (negative from the end, clamped,
    an empty string when the range is empty)."""
    start, end = to_int(args[2]), to_int(args[3])

    def render(entry: Entry | None) -> bytes:
        value = entry.value if entry is not None else b""
        return p.bulk(_substring(value, start, end))
    return later(client.service.get(args[1], client.consistency), render)


def _substring(value: bytes, start: int, end: int) -> bytes:
    size = len(value)
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start = max(size + start, 0)
    if end < 0:
        end = max(size + end, 0)
    end = min(end, size - 1)
    return b"" if start > end or size == 0 else value[start : end + 1]


def setrange(client: Client, args: list[bytes]) -> Reply:
    offset = to_int(args[2])
    if offset < 0:
        raise CommandError("ERR offset is out of range")

    def render(result: Result) -> bytes:
        entry = result.entry
        return p.integer(len(entry.value) if entry is not None else 0)
    return later(client.service.set_range(args[1], offset, args[3]), render)


def incrbyfloat(client: Client, args: list[bytes]) -> Reply:
    if parse_long_double(args[2]) is None:
        raise CommandError(NOT_FLOAT)

    def render(result: Result) -> bytes:
        if result.outcome is Outcome.NOT_FLOAT:
            raise CommandError(NOT_FLOAT)
        if result.outcome is Outcome.OVERFLOW:
            raise CommandError("ERR increment would produce NaN or Infinity")
        assert result.entry is not None
        return client.enc.bulk(result.entry.value)
    return later(client.service.incr_by_float(args[1], args[2]), render)


COMMANDS: Final = [
    spec("get", 2, "readonly fast", get, 1, 1),
    spec("set", -3, "write", set_, 1, 1),
    spec("setnx", 3, "write fast", setnx, 1, 1),
    spec("getset", 3, "write fast", getset, 1, 1),
    spec("getdel", 2, "write fast", getdel, 1, 1),
    spec("mget", -2, "readonly fast", mget, 1, -1),
    spec("mset", -3, "write", mset, 1, -1, 2),
    spec("msetnx", -3, "write", msetnx, 1, -1, 2),
    spec("incr", 2, "write fast", incr, 1, 1),
    spec("decr", 2, "write fast", decr, 1, 1),
    spec("incrby", 3, "write fast", incrby, 1, 1),
    spec("decrby", 3, "write fast", decrby, 1, 1),
    spec("append", 3, "write fast", append, 1, 1),
    spec("strlen", 2, "readonly fast", strlen, 1, 1),
    spec("setex", 4, "write", setex, 1, 1),
    spec("psetex", 4, "write", psetex, 1, 1),
    spec("getex", -2, "write fast", getex, 1, 1),
    spec("getrange", 4, "readonly", getrange, 1, 1),
    spec("substr", 4, "readonly", getrange, 1, 1),
    spec("setrange", 4, "write", setrange, 1, 1),
    spec("incrbyfloat", 3, "write fast", incrbyfloat, 1, 1),
]
