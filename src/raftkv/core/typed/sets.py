"""Sets: the S... family (Redis's t_set.c), over ``containers.Set``."""

from __future__ import annotations

from typing import Final

from raftkv.core.containers import Kind, Set
from raftkv.core.glob import compile_glob
from raftkv.core.typed.args import (
    SYNTAX,
    card_limit,
    first_keys,
    integer,
    numkeys,
    positive,
    scan_options,
)
from raftkv.core.typed.context import Ctx, OpError
from raftkv.core.typed.replies import Members, Reply
from raftkv.core.typed.spec import Op, TypedSpec, row

S: Final = Kind.SET


def _read(ctx: Ctx, key: bytes) -> Set | None:
    found = ctx.read(key, S)
    assert found is None or isinstance(found, Set)
    return found


def _write(ctx: Ctx, key: bytes) -> Set:
    found = ctx.write(key, S)
    assert isinstance(found, Set)
    return found


def sadd(ctx: Ctx, args: list[bytes]) -> Reply:
    members = _write(ctx, args[1])
    added = sum(1 for member in args[2:] if members.add(member))
    if added:
        ctx.changed(args[1], b"sadd", S)
    return added


def srem(ctx: Ctx, args: list[bytes]) -> Reply:
    if _read(ctx, args[1]) is None:
        return 0
    members = _write(ctx, args[1])
    removed = sum(1 for member in args[2:] if members.discard(member))
    if removed:
        ctx.changed(args[1], b"srem", S)
    return removed


def smembers(ctx: Ctx, args: list[bytes]) -> Reply:
    members = _read(ctx, args[1])
    return Members(members) if members is not None else Members()


def sismember(ctx: Ctx, args: list[bytes]) -> Reply:
    members = _read(ctx, args[1])
    return int(members is not None and args[2] in members)


def smismember(ctx: Ctx, args: list[bytes]) -> Reply:
    members = _read(ctx, args[1])
    return [int(members is not None and m in members) for m in args[2:]]


def scard(ctx: Ctx, args: list[bytes]) -> Reply:
    members = _read(ctx, args[1])
    return len(members) if members is not None else 0


def _pick(ctx: Ctx, members: Set, count: int) -> list[bytes]:
    """``count`` distinct members, chosen with the entry's seeded randomness (positions
    in the set's order: the same on every replica)."""
    if count >= len(members):
        return list(members)
    return [members.items[i] for i in ctx.sample(len(members), count)]


def spop(ctx: Ctx, args: list[bytes]) -> Reply:
    if len(args) > 3:
        raise OpError(SYNTAX)
    count = positive(args[2]) if len(args) == 3 else None
    found = _read(ctx, args[1])
    if found is None:
        return None if count is None else Members()
    if count == 0:
        return Members()
    chosen = _pick(ctx, found, count or 1)
    members = _write(ctx, args[1])
    for member in chosen:
        members.discard(member)
    ctx.changed(args[1], b"spop", S)
    return chosen[0] if count is None else Members(chosen)


def srandmember(ctx: Ctx, args: list[bytes]) -> Reply:
    if len(args) > 3:
        raise OpError(SYNTAX)
    count = integer(args[2]) if len(args) == 3 else None
    if count is not None and count < -(2**62):
        raise OpError(b"ERR value is out of range")
    found = _read(ctx, args[1])
    if found is None:
        return None if count is None else []
    if count is None:
        return _pick(ctx, found, 1)[0]
    if count >= 0:
        return _pick(ctx, found, count)
    items = found.items
    return [items[ctx.randrange(len(items))] for _ in range(-count)]


def smove(ctx: Ctx, args: list[bytes]) -> Reply:
    source, target, member = args[1], args[2], args[3]
    found = _read(ctx, source)
    if found is None:
        return 0
    ctx.check(target, S)
    if member not in found:
        return 0
    if source == target:
        return 1
    _write(ctx, source).discard(member)
    ctx.changed(source, b"srem", S)
    _write(ctx, target).add(member)
    ctx.changed(target, b"sadd", S)
    return 1


def _combine(ctx: Ctx, keys: list[bytes], how: str) -> list[bytes]:
    sets = [_read(ctx, key) for key in keys]  # every key's type is checked first
    if how == "inter":
        if any(s is None for s in sets):
            return []
        ordered = sorted((s for s in sets if s is not None), key=len)
        return [m for m in ordered[0] if all(m in s for s in ordered[1:])]
    if how == "union":
        out: dict[bytes, None] = {}
        for s in sets:
            if s is not None:
                out.update(dict.fromkeys(s.items))
        return list(out)
    first = sets[0]
    if first is None:
        return []
    rest = [s for s in sets[1:] if s is not None]
    return [m for m in first if not any(m in s for s in rest)]


def _read_op(how: str) -> Op:
    def op(ctx: Ctx, args: list[bytes]) -> Reply:
        return Members(_combine(ctx, args[1:], how))
    return op


def _store_op(how: str) -> Op:
    def op(ctx: Ctx, args: list[bytes]) -> Reply:
        found = _combine(ctx, args[2:], how)
        ctx.put(args[1], Set(ctx.keyspace.epoch, found) if found else None)
        if found:
            ctx.changed(args[1], b"s%sstore" % how.encode(), S)
        return len(found)
    return op


def sintercard(ctx: Ctx, args: list[bytes]) -> Reply:
    keys, after = numkeys(args, 1)
    limit = card_limit(args, after)
    found = _combine(ctx, keys, "inter")
    return min(len(found), limit) if limit else len(found)


def sscan(ctx: Ctx, args: list[bytes]) -> Reply:
    pattern = scan_options(args, 3)
    found = _read(ctx, args[1])
    matches = compile_glob(pattern).match if pattern is not None else None
    items: list[Reply] = [m for m in (found or ()) if matches is None or matches(m)]
    return [b"0", items]


COMMANDS: Final[list[TypedSpec]] = [
    row("sadd", -3, "write denyoom fast", sadd),
    row("srem", -3, "write fast", srem),
    row("smembers", 2, "readonly", smembers),
    row("sismember", 3, "readonly fast", sismember),
    row("smismember", -3, "readonly fast", smismember),
    row("scard", 2, "readonly fast", scard),
    row("spop", -2, "write fast", spop),
    row("srandmember", -2, "readonly", srandmember),
    row("smove", 4, "write fast", smove, 1, 2),
    row("sinter", -2, "readonly", _read_op("inter"), 1, -1),
    row("sunion", -2, "readonly", _read_op("union"), 1, -1),
    row("sdiff", -2, "readonly", _read_op("diff"), 1, -1),
    row("sinterstore", -3, "write denyoom", _store_op("inter"), 1, -1),
    row("sunionstore", -3, "write denyoom", _store_op("union"), 1, -1),
    row("sdiffstore", -3, "write denyoom", _store_op("diff"), 1, -1),
    row("sintercard", -3, "readonly", sintercard, find_keys=first_keys),
    row("sscan", -3, "readonly", sscan),
]
