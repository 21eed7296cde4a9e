"""Lists: the L/R... family (Redis's t_list.c), over ``containers.List`` (a deque)."""

from __future__ import annotations

from itertools import islice
from typing import Final

from raftkv.core.containers import Kind, List
from raftkv.core.typed.args import (
    SYNTAX,
    count_option,
    integer,
    mpop_keys,
    positive,
)
from raftkv.core.typed.context import Ctx, OpError
from raftkv.core.typed.replies import NIL_ARRAY, OK, Reply
from raftkv.core.typed.spec import TypedSpec, row

L: Final = Kind.LIST


def _read(ctx: Ctx, key: bytes) -> List | None:
    found = ctx.read(key, L)
    assert found is None or isinstance(found, List)
    return found


def _write(ctx: Ctx, key: bytes) -> List:
    found = ctx.write(key, L)
    assert isinstance(found, List)
    return found


def _side(raw: bytes) -> bool:
    """LEFT (True) or RIGHT (False), else a syntax error."""
    word = raw.upper()
    if word == b"LEFT":
        return True
    if word == b"RIGHT":
        return False
    raise OpError(SYNTAX)


def _push(ctx: Ctx, args: list[bytes], left: bool, only_existing: bool) -> Reply:
    key = args[1]
    if only_existing and _read(ctx, key) is None:
        return 0
    items = _write(ctx, key)
    for item in args[2:]:
        items.push(item, left)
    ctx.changed(key, b"lpush" if left else b"rpush", L)
    return len(items)


def lpush(ctx: Ctx, args: list[bytes]) -> Reply:
    return _push(ctx, args, True, False)


def rpush(ctx: Ctx, args: list[bytes]) -> Reply:
    return _push(ctx, args, False, False)


def lpushx(ctx: Ctx, args: list[bytes]) -> Reply:
    return _push(ctx, args, True, True)


def rpushx(ctx: Ctx, args: list[bytes]) -> Reply:
    return _push(ctx, args, False, True)


def _pop(ctx: Ctx, args: list[bytes], left: bool) -> Reply:
    if len(args) > 3:
        raise OpError(b"ERR wrong number of arguments for '%s' command"
                      % (b"lpop" if left else b"rpop"))
    count = positive(args[2]) if len(args) == 3 else None
    if _read(ctx, args[1]) is None:
        return None if count is None else NIL_ARRAY
    if count == 0:
        return []
    items = _write(ctx, args[1])
    popped = [items.pop(left) for _ in range(min(count or 1, len(items)))]
    ctx.changed(args[1], b"lpop" if left else b"rpop", L)
    return popped[0] if count is None else popped


def lpop(ctx: Ctx, args: list[bytes]) -> Reply:
    return _pop(ctx, args, True)


def rpop(ctx: Ctx, args: list[bytes]) -> Reply:
    return _pop(ctx, args, False)


def llen(ctx: Ctx, args: list[bytes]) -> Reply:
    items = _read(ctx, args[1])
    return len(items) if items is not None else 0


def _bounds(start: int, stop: int, size: int) -> tuple[int, int]:
    """Redis's inclusive range with negative indexes, as [start, stop) clamped."""
    if start < 0:
        start = max(start + size, 0)
    if stop < 0:
        stop += size
    stop = min(stop, size - 1)
    return start, (stop + 1 if start <= stop else start)


def lrange(ctx: Ctx, args: list[bytes]) -> Reply:
    start, stop = integer(args[2]), integer(args[3])
    items = _read(ctx, args[1])
    if items is None:
        return []
    first, end = _bounds(start, stop, len(items))
    return list(islice(items.view(), first, end))


def lindex(ctx: Ctx, args: list[bytes]) -> Reply:
    index = integer(args[2])
    items = _read(ctx, args[1])
    if items is None:
        return None
    if index < 0:
        index += len(items)
    return items.view()[index] if 0 <= index < len(items) else None


def lset(ctx: Ctx, args: list[bytes]) -> Reply:
    index = integer(args[2])
    if _read(ctx, args[1]) is None:
        raise OpError(b"ERR no such key")
    items = _write(ctx, args[1])
    if index < 0:
        index += len(items)
    if not 0 <= index < len(items):
        raise OpError(b"ERR index out of range")
    items.set(index, args[3])
    ctx.changed(args[1], b"lset", L)
    return OK


def linsert(ctx: Ctx, args: list[bytes]) -> Reply:
    where = args[2].upper()
    if where not in (b"BEFORE", b"AFTER"):
        raise OpError(SYNTAX)
    found = _read(ctx, args[1])
    if found is None:
        return 0
    try:
        position = found.view().index(args[3])
    except ValueError:
        return -1
    items = _write(ctx, args[1])
    items.insert(position + (where == b"AFTER"), args[4])
    ctx.changed(args[1], b"linsert", L)
    return len(items)


def lrem(ctx: Ctx, args: list[bytes]) -> Reply:
    count = integer(args[2])
    found = _read(ctx, args[1])
    if found is None:
        return 0
    element = args[3]
    order = list(found.view())
    if count < 0:
        order.reverse()
    limit = abs(count) or len(order)
    kept: list[bytes] = []
    removed = 0
    for item in order:
        if item == element and removed < limit:
            removed += 1
        else:
            kept.append(item)
    if not removed:
        return 0
    items = _write(ctx, args[1])
    items.replace_all(kept if count >= 0 else reversed(kept))
    ctx.changed(args[1], b"lrem", L)
    return removed


def ltrim(ctx: Ctx, args: list[bytes]) -> Reply:
    start, stop = integer(args[2]), integer(args[3])
    found = _read(ctx, args[1])
    if found is None:
        return OK
    first, end = _bounds(start, stop, len(found))
    if first == 0 and end == len(found):
        return OK
    items = _write(ctx, args[1])
    items.replace_all(list(islice(items.view(), first, end)))
    ctx.changed(args[1], b"ltrim", L)
    return OK


def lpos(ctx: Ctx, args: list[bytes]) -> Reply:
    """LPOS key element [RANK rank] [COUNT num] [MAXLEN len]."""
    rank, count, maxlen = 1, None, 0
    i = 3
    while i < len(args):
        option = args[i].upper()
        if i + 1 >= len(args):
            raise OpError(SYNTAX)
        if option == b"RANK":
            rank = integer(args[i + 1])
            if rank == 0 or rank == -2**63:
                raise OpError(b"ERR RANK can't be zero: use 1 to start from the first match, "
                              b"2 from the second ... or use negative to start from the end "
                              b"of the list")
        elif option == b"COUNT":
            count = positive(args[i + 1], b"ERR COUNT can't be negative")
        elif option == b"MAXLEN":
            maxlen = positive(args[i + 1], b"ERR MAXLEN can't be negative")
        else:
            raise OpError(SYNTAX)
        i += 2
    found = _read(ctx, args[1])
    if found is None:
        return None if count is None else []
    size = len(found)
    indexes = range(size) if rank > 0 else range(size - 1, -1, -1)
    if maxlen:
        indexes = indexes[:maxlen]
    skip = abs(rank) - 1
    matches: list[Reply] = []
    wanted = count if count else size if count == 0 else 1
    items = found.view()
    for index in indexes:
        if items[index] == args[2]:
            if skip:
                skip -= 1
                continue
            matches.append(index)
            if len(matches) >= wanted:
                break
    if count is None:
        return matches[0] if matches else None
    return matches


def _move(ctx: Ctx, source: bytes, target: bytes, from_left: bool, to_left: bool) -> Reply:
    if _read(ctx, source) is None:
        return None
    ctx.check(target, L)
    item = _write(ctx, source).pop(from_left)
    ctx.changed(source, b"lpop" if from_left else b"rpop", L)
    _write(ctx, target).push(item, to_left)
    ctx.changed(target, b"lpush" if to_left else b"rpush", L)
    return item


def lmove(ctx: Ctx, args: list[bytes]) -> Reply:
    return _move(ctx, args[1], args[2], _side(args[3]), _side(args[4]))


def rpoplpush(ctx: Ctx, args: list[bytes]) -> Reply:
    return _move(ctx, args[1], args[2], False, True)


def lmpop(ctx: Ctx, args: list[bytes]) -> Reply:
    """LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]: from the first non-empty."""
    keys, after = mpop_keys(args)
    if after >= len(args):
        raise OpError(SYNTAX)
    left = _side(args[after])
    count = count_option(args, after + 1, b"COUNT", b"ERR count should be greater than 0") or 1
    for key in keys:
        if _read(ctx, key) is not None:
            items = _write(ctx, key)
            popped: list[Reply] = [items.pop(left) for _ in range(min(count, len(items)))]
            ctx.changed(key, b"lpop" if left else b"rpop", L)
            return [key, popped]
    return NIL_ARRAY


COMMANDS: Final[list[TypedSpec]] = [
    row("lpush", -3, "write denyoom fast", lpush),
    row("rpush", -3, "write denyoom fast", rpush),
    row("lpushx", -3, "write denyoom fast", lpushx),
    row("rpushx", -3, "write denyoom fast", rpushx),
    row("lpop", -2, "write fast", lpop),
    row("rpop", -2, "write fast", rpop),
    row("llen", 2, "readonly fast", llen),
    row("lrange", 4, "readonly", lrange),
    row("lindex", 3, "readonly", lindex),
    row("lset", 4, "write denyoom", lset),
    row("linsert", 5, "write denyoom", linsert),
    row("lrem", 4, "write", lrem),
    row("ltrim", 4, "write", ltrim),
    row("lpos", -3, "readonly", lpos),
    row("lmove", 5, "write denyoom", lmove, 1, 2),
    row("rpoplpush", 3, "write denyoom", rpoplpush, 1, 2),
    row("lmpop", -4, "write", lmpop, find_keys=lambda args: mpop_keys(args)[0]),
]
