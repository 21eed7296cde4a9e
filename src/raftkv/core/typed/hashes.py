"""Hashes: the H... family (Redis's t_hash.c), over ``containers.Hash``."""

from __future__ import annotations

from typing import Final

from raftkv.core.containers import Hash, Kind
from raftkv.core.glob import compile_glob
from raftkv.core.numbers import (
    INT64_MAX,
    INT64_MIN,
    add_long_double,
    format_long_double,
    parse_int64,
    parse_long_double,
)
from raftkv.core.typed.args import NOT_FLOAT, integer, pairs, scan_options
from raftkv.core.typed.context import Ctx, OpError
from raftkv.core.typed.replies import OK, Map, Pairs, Reply
from raftkv.core.typed.spec import TypedSpec, row

H: Final = Kind.HASH


def _read(ctx: Ctx, key: bytes) -> Hash | None:
    found = ctx.read(key, H)
    assert found is None or isinstance(found, Hash)
    return found


def _write(ctx: Ctx, key: bytes) -> Hash:
    found = ctx.write(key, H)
    assert isinstance(found, Hash)
    return found


def _pairs(args: list[bytes], name: str) -> list[tuple[bytes, bytes]]:
    if len(args) % 2:
        raise OpError(b"ERR wrong number of arguments for '%s' command" % name.encode())
    return pairs(args, 2)


def hset(ctx: Ctx, args: list[bytes]) -> Reply:
    items = _pairs(args, "hset")
    h = _write(ctx, args[1])
    added = sum(1 for field, value in items if h.set(field, value))
    ctx.changed(args[1], b"hset", H)
    return added


def hmset(ctx: Ctx, args: list[bytes]) -> Reply:
    items = _pairs(args, "hmset")
    h = _write(ctx, args[1])
    for field, value in items:
        h.set(field, value)
    ctx.changed(args[1], b"hset", H)
    return OK


def hsetnx(ctx: Ctx, args: list[bytes]) -> Reply:
    found = _read(ctx, args[1])
    if found is not None and found.get(args[2]) is not None:
        return 0
    _write(ctx, args[1]).set(args[2], args[3])
    ctx.changed(args[1], b"hset", H)
    return 1


def hget(ctx: Ctx, args: list[bytes]) -> Reply:
    h = _read(ctx, args[1])
    return None if h is None else h.get(args[2])


def hmget(ctx: Ctx, args: list[bytes]) -> Reply:
    h = _read(ctx, args[1])
    if h is None:
        return [None] * (len(args) - 2)
    return [h.get(field) for field in args[2:]]


def hgetall(ctx: Ctx, args: list[bytes]) -> Reply:
    h = _read(ctx, args[1])
    out = Map()
    if h is not None:
        for field, value in h.view().items():
            out += (field, value)
    return out


def hkeys(ctx: Ctx, args: list[bytes]) -> Reply:
    h = _read(ctx, args[1])
    return list(h.view()) if h is not None else []


def hvals(ctx: Ctx, args: list[bytes]) -> Reply:
    h = _read(ctx, args[1])
    return list(h.view().values()) if h is not None else []


def hlen(ctx: Ctx, args: list[bytes]) -> Reply:
    h = _read(ctx, args[1])
    return len(h) if h is not None else 0


def hexists(ctx: Ctx, args: list[bytes]) -> Reply:
    h = _read(ctx, args[1])
    return int(h is not None and h.get(args[2]) is not None)


def hstrlen(ctx: Ctx, args: list[bytes]) -> Reply:
    h = _read(ctx, args[1])
    value = h.get(args[2]) if h is not None else None
    return len(value) if value is not None else 0


def hdel(ctx: Ctx, args: list[bytes]) -> Reply:
    if _read(ctx, args[1]) is None:
        return 0
    h = _write(ctx, args[1])
    removed = sum(1 for field in args[2:] if h.delete(field))
    if removed:
        ctx.changed(args[1], b"hdel", H)
    return removed


def hincrby(ctx: Ctx, args: list[bytes]) -> Reply:
    delta = integer(args[3])
    found = _read(ctx, args[1])
    current = found.get(args[2]) if found is not None else None
    number = 0 if current is None else parse_int64(current)
    if number is None:
        raise OpError(b"ERR hash value is not an integer")
    total = number + delta
    if not INT64_MIN <= total <= INT64_MAX:
        raise OpError(b"ERR increment or decrement would overflow")
    _write(ctx, args[1]).set(args[2], b"%d" % total)
    ctx.changed(args[1], b"hincrby", H)
    return total


def hincrbyfloat(ctx: Ctx, args: list[bytes]) -> Reply:
    delta = parse_long_double(args[3])
    if delta is None:
        raise OpError(NOT_FLOAT)
    if not delta.is_finite():
        raise OpError(b"ERR value is NaN or Infinity")
    found = _read(ctx, args[1])
    current = found.get(args[2]) if found is not None else None
    number = parse_long_double(current if current is not None else b"0")
    if number is None:
        raise OpError(b"ERR hash value is not a float")
    total = add_long_double(number, delta)
    if total is None:
        raise OpError(b"ERR increment would produce NaN or Infinity")
    text = format_long_double(total)
    _write(ctx, args[1]).set(args[2], text)
    ctx.changed(args[1], b"hincrbyfloat", H)
    return text


def hrandfield(ctx: Ctx, args: list[bytes]) -> Reply:
    """HRANDFIELD key [count [WITHVALUES]]: a negative count may repeat fields."""
    if len(args) > 4 or (len(args) == 4 and args[3].upper() != b"WITHVALUES"):
        raise OpError(b"ERR syntax error")
    count = integer(args[2]) if len(args) >= 3 else None
    with_values = len(args) == 4
    h = _read(ctx, args[1])
    if count is None:
        if h is None:
            return None
        return list(h.view())[ctx.randrange(len(h))]
    if h is None or count == 0:
        return []
    view = h.view()
    fields = list(view)
    if count > 0:
        chosen = fields if count >= len(fields) else \
            [fields[i] for i in ctx.sample(len(fields), count)]
    else:
        chosen = [fields[ctx.randrange(len(fields))] for _ in range(-count)]
    if not with_values:
        return list(chosen)
    out = Pairs()
    for field in chosen:
        out += (field, view[field])
    return out


def hscan(ctx: Ctx, args: list[bytes]) -> Reply:
    pattern = scan_options(args, 3)
    h = _read(ctx, args[1])
    items: list[Reply] = []
    if h is not None:
        matches = compile_glob(pattern).match if pattern is not None else None
        for field, value in h.view().items():
            if matches is None or matches(field):
                items += (field, value)
    return [b"0", items]



COMMANDS: Final[list[TypedSpec]] = [
    row("hset", -4, "write denyoom fast", hset),
    row("hmset", -4, "write denyoom fast", hmset),
    row("hsetnx", 4, "write denyoom fast", hsetnx),
    row("hget", 3, "readonly fast", hget),
    row("hmget", -3, "readonly fast", hmget),
    row("hgetall", 2, "readonly", hgetall),
    row("hkeys", 2, "readonly", hkeys),
    row("hvals", 2, "readonly", hvals),
    row("hlen", 2, "readonly fast", hlen),
    row("hexists", 3, "readonly fast", hexists),
    row("hstrlen", 3, "readonly fast", hstrlen),
    row("hdel", -3, "write fast", hdel),
    row("hincrby", 4, "write denyoom fast", hincrby),
    row("hincrbyfloat", 4, "write denyoom fast", hincrbyfloat),
    row("hrandfield", -2, "readonly", hrandfield),
    row("hscan", -3, "readonly", hscan),
]
