"""Sorted sets: the Z... family (Redis's t_zset.c), over ``containers.ZSet``: members
ordered by (score, member), scores as doubles."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from raftkv.core.containers import Kind, Set, ZSet
from raftkv.core.glob import compile_glob
from raftkv.core.typed.args import (
    SYNTAX,
    card_limit,
    count_option,
    double_text,
    first_keys,
    integer,
    mpop_keys,
    number,
    numkeys,
    positive,
    scan_options,
)
from raftkv.core.typed.context import WRONGTYPE, Ctx, OpError
from raftkv.core.typed.replies import NIL_ARRAY, Pairs, Reply
from raftkv.core.typed.spec import Op, TypedSpec, row

Z: Final = Kind.ZSET
NAN_SCORE: Final = b"ERR resulting score is not a number (NaN)"
NOT_FLOAT_RANGE: Final = b"ERR min or max is not a float"
NOT_LEX_RANGE: Final = b"ERR min or max not valid string range item"
_INF: Final = math.inf


def _read(ctx: Ctx, key: bytes) -> ZSet | None:
    found = ctx.read(key, Z)
    assert found is None or isinstance(found, ZSet)
    return found


def _write(ctx: Ctx, key: bytes) -> ZSet:
    found = ctx.write(key, Z)
    assert isinstance(found, ZSet)
    return found


# --- ranges ------------------------------------------------------------------------

def _score_bound(raw: bytes) -> tuple[float, bool]:
    """A ZRANGEBYSCORE bound: (score, exclusive)."""
    exclusive = raw.startswith(b"(")
    return number(raw[1:] if exclusive else raw, NOT_FLOAT_RANGE), exclusive


def _score_slice(z: ZSet, low: tuple[float, bool], high: tuple[float, bool]) -> tuple[int, int]:
    """Positions [start, end) of the members whose scores are within the bounds."""
    (lo, lo_ex), (hi, hi_ex) = low, high
    if lo_ex:
        if lo == _INF:
            return 0, 0
        start = z.bisect(math.nextafter(lo, _INF))
    else:
        start = z.bisect(lo)
    if hi_ex:
        end = z.bisect(hi)
    elif hi == _INF:
        end = len(z)
    else:
        end = z.bisect(math.nextafter(hi, _INF))
    return start, max(start, end)


_LEX_MIN: Final = b"-"
_LEX_MAX: Final = b"+"


def _lex_bound(raw: bytes) -> tuple[bytes, int]:
    """A ZRANGEBYLEX bound: (member, 0 inclusive / 1 exclusive / -1 '-' / 2 '+')."""
    if raw == _LEX_MIN:
        return b"", -1
    if raw == _LEX_MAX:
        return b"", 2
    if raw[:1] == b"[":
        return raw[1:], 0
    if raw[:1] == b"(":
        return raw[1:], 1
    raise OpError(NOT_LEX_RANGE)


def _above(member: bytes, bound: tuple[bytes, int]) -> bool:
    value, how = bound
    return how == -1 or (how != 2 and (member > value if how else member >= value))


def _below(member: bytes, bound: tuple[bytes, int]) -> bool:
    value, how = bound
    return how == 2 or (how != -1 and (member < value if how else member <= value))


def _lex_members(z: ZSet, low: tuple[bytes, int], high: tuple[bytes, int]) -> list[int]:
    return [i for i, (_, m) in enumerate(z.order) if _above(m, low) and _below(m, high)]


def _rank_slice(start: int, stop: int, size: int) -> tuple[int, int]:
    if start < 0:
        start += size
    if stop < 0:
        stop += size
    start = max(start, 0)
    if start > stop or start >= size:
        return 0, 0
    return start, min(stop, size - 1) + 1


class _Range:
    """A parsed ZRANGE (and its older forms): which positions, in which direction."""

    def __init__(self, by: str, reverse: bool, low: bytes, high: bytes, offset: int,
                 limit: int) -> None:
        self.by, self.reverse, self.offset, self.limit = by, reverse, offset, limit
        if reverse and by != "rank":
            low, high = high, low  # given as max, min
        self.rank = (integer(low), integer(high)) if by == "rank" else (0, 0)
        self.score = (_score_bound(low), _score_bound(high)) if by == "score" else None
        self.lex = (_lex_bound(low), _lex_bound(high)) if by == "lex" else None

    def positions(self, z: ZSet) -> list[int]:
        size = len(z)
        if self.by == "rank":
            start, end = _rank_slice(self.rank[0], self.rank[1], size)
            if self.reverse:
                return list(range(size - 1 - start, size - 1 - end, -1))
            return list(range(start, end))
        if self.score is not None:
            start, end = _score_slice(z, *self.score)
            chosen = list(range(start, end))
        else:
            assert self.lex is not None
            chosen = _lex_members(z, *self.lex)
        if self.reverse:
            chosen.reverse()
        if self.offset < 0:
            return []
        stop = None if self.limit < 0 else self.offset + self.limit
        return chosen[self.offset : stop]


def _parse_range(args: list[bytes], first: int, by: str, reverse: bool | None,
                 store: bool) -> tuple[_Range, bool]:
    """ZRANGE's options from ``args[first + 2:]``; (range, withscores)."""
    withscores, offset, limit = False, 0, -1
    chosen_by = by
    rev = reverse
    j = first + 2
    while j < len(args):
        word = args[j].upper()
        left = len(args) - j - 1
        if word == b"WITHSCORES" and not store:
            withscores = True
        elif word == b"LIMIT" and left >= 2:
            offset, limit = integer(args[j + 1]), integer(args[j + 2])
            j += 2
        elif word == b"REV" and rev is None:
            rev = True
        elif word == b"BYLEX" and chosen_by == "auto":
            chosen_by = "lex"
        elif word == b"BYSCORE" and chosen_by == "auto":
            chosen_by = "score"
        else:
            raise OpError(SYNTAX)
        j += 1
    if chosen_by == "auto":
        chosen_by = "rank"
    if limit != -1 and chosen_by == "rank":
        raise OpError(b"ERR syntax error, LIMIT is only supported in combination with either "
                      b"BYSCORE or BYLEX")
    if withscores and chosen_by == "lex":
        raise OpError(b"ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    return _Range(chosen_by, bool(rev), args[first], args[first + 1], offset, limit), withscores


def _emit(z: ZSet, positions: list[int], withscores: bool) -> Reply:
    order = z.order
    if not withscores:
        return [order[i][1] for i in positions]
    out = Pairs()
    for i in positions:
        score, member = order[i]
        out += (member, score)
    return out


def _range_op(by: str, reverse: bool | None) -> Op:
    def op(ctx: Ctx, args: list[bytes]) -> Reply:
        spec, withscores = _parse_range(args, 2, by, reverse, False)
        z = _read(ctx, args[1])
        return [] if z is None else _emit(z, spec.positions(z), withscores)
    return op


def zrangestore(ctx: Ctx, args: list[bytes]) -> Reply:
    spec, _ = _parse_range(args, 3, "auto", None, True)
    z = _read(ctx, args[2])
    chosen: dict[bytes, float] = {}
    if z is not None:
        order = z.order
        for i in spec.positions(z):
            score, member = order[i]
            chosen[member] = score
    ctx.put(args[1], ZSet(ctx.keyspace.epoch, chosen) if chosen else None)
    if chosen:
        ctx.changed(args[1], b"zrangestore", Z)
    return len(chosen)


# --- single members ----------------------------------------------------------------

_ZADD_FLAGS: Final = (b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR")


def zadd(ctx: Ctx, args: list[bytes]) -> Reply:
    seen = [False] * len(_ZADD_FLAGS)  # (the flags given, in _ZADD_FLAGS's order)
    i = 2
    while i < len(args):
        flag = args[i].upper()
        if flag not in _ZADD_FLAGS:
            break
        seen[_ZADD_FLAGS.index(flag)] = True
        i += 1
    nx, xx, gt, lt, ch, incr = seen
    rest = args[i:]
    if not rest or len(rest) % 2:
        raise OpError(SYNTAX)
    if nx and xx:
        raise OpError(b"ERR XX and NX options at the same time are not compatible")
    if (gt and nx) or (lt and nx) or (gt and lt):
        raise OpError(b"ERR GT, LT, and/or NX options at the same time are not compatible")
    if incr and len(rest) > 2:
        raise OpError(b"ERR INCR option supports a single increment-element pair")
    pairs = [(number(rest[j]), rest[j + 1]) for j in range(0, len(rest), 2)]
    if xx and _read(ctx, args[1]) is None:
        return None if incr else 0
    z = _write(ctx, args[1])  # (WRONGTYPE here, before any change)
    added = updated = 0
    result: float | None = None
    for score, member in pairs:
        current = z.score(member)
        if current is None:
            if xx:
                continue
            z.set(member, score)
            added += 1
            result = score
            continue
        if nx:
            continue
        new = current + score if incr else score
        if math.isnan(new):
            raise OpError(NAN_SCORE)
        if (gt and new <= current) or (lt and new >= current):
            continue
        result = new
        if new != current:
            z.set(member, new)
            updated += 1
    if added or updated:
        ctx.changed(args[1], b"zincr" if incr else b"zadd", Z)
    if incr:
        return result
    return added + updated if ch else added


def zincrby(ctx: Ctx, args: list[bytes]) -> Reply:
    delta = number(args[2])
    found = _read(ctx, args[1])
    current = found.score(args[3]) if found is not None else None
    new = delta if current is None else current + delta
    if math.isnan(new):
        raise OpError(NAN_SCORE)
    _write(ctx, args[1]).set(args[3], new)
    ctx.changed(args[1], b"zincr", Z)
    return new


def zrem(ctx: Ctx, args: list[bytes]) -> Reply:
    if _read(ctx, args[1]) is None:
        return 0
    z = _write(ctx, args[1])
    removed = sum(1 for member in args[2:] if z.delete(member))
    if removed:
        ctx.changed(args[1], b"zrem", Z)
    return removed


def zscore(ctx: Ctx, args: list[bytes]) -> Reply:
    z = _read(ctx, args[1])
    return z.score(args[2]) if z is not None else None


def zmscore(ctx: Ctx, args: list[bytes]) -> Reply:
    z = _read(ctx, args[1])
    scores = z.scores if z is not None else {}
    return [scores.get(member) for member in args[2:]]


def zcard(ctx: Ctx, args: list[bytes]) -> Reply:
    z = _read(ctx, args[1])
    return len(z) if z is not None else 0


def zcount(ctx: Ctx, args: list[bytes]) -> Reply:
    low, high = _score_bound(args[2]), _score_bound(args[3])
    z = _read(ctx, args[1])
    if z is None:
        return 0
    start, end = _score_slice(z, low, high)
    return end - start


def zlexcount(ctx: Ctx, args: list[bytes]) -> Reply:
    low, high = _lex_bound(args[2]), _lex_bound(args[3])
    z = _read(ctx, args[1])
    return 0 if z is None else len(_lex_members(z, low, high))


def _rank(reverse: bool) -> Op:
    def op(ctx: Ctx, args: list[bytes]) -> Reply:
        z = _read(ctx, args[1])
        rank = z.rank(args[2]) if z is not None else None
        if rank is None or z is None:
            return None
        return len(z) - 1 - rank if reverse else rank
    return op


def _remove_range(by: str) -> Op:
    def op(ctx: Ctx, args: list[bytes]) -> Reply:
        spec = _Range(by, False, args[2], args[3], 0, -1)
        found = _read(ctx, args[1])
        if found is None:
            return 0
        order = found.order
        victims = [order[i][1] for i in spec.positions(found)]
        if not victims:
            return 0
        z = _write(ctx, args[1])
        for member in victims:
            z.delete(member)
        ctx.changed(args[1], b"zremrangeby" + by.encode(), Z)
        return len(victims)
    return op


# --- pops --------------------------------------------------------------------------

def _pop_from(ctx: Ctx, key: bytes, highest: bool, count: int) -> list[tuple[bytes, float]]:
    z = _write(ctx, key)
    taken = []
    for _ in range(min(count, len(z))):
        score, member = z.pop(highest)
        taken.append((member, score))
    ctx.changed(key, b"zpopmax" if highest else b"zpopmin", Z)
    return taken


def _zpop(highest: bool) -> Op:
    def op(ctx: Ctx, args: list[bytes]) -> Reply:
        if len(args) > 3:
            raise OpError(SYNTAX)
        count = positive(args[2]) if len(args) == 3 else None
        if _read(ctx, args[1]) is None or count == 0:
            return []
        taken = _pop_from(ctx, args[1], highest, count or 1)
        out: list[Reply] = Pairs() if count is not None else []
        for member, score in taken:
            out += (member, score)
        return out
    return op


def zmpop(ctx: Ctx, args: list[bytes]) -> Reply:
    keys, after = mpop_keys(args)
    if after >= len(args) or args[after].upper() not in (b"MIN", b"MAX"):
        raise OpError(SYNTAX)
    highest = args[after].upper() == b"MAX"
    count = count_option(args, after + 1, b"COUNT", b"ERR count should be greater than 0") or 1
    for key in keys:
        if _read(ctx, key) is not None:
            taken = _pop_from(ctx, key, highest, count)
            return [key, [[member, score] for member, score in taken]]
    return NIL_ARRAY


# --- union, intersection, difference -------------------------------------------------

def _source(ctx: Ctx, key: bytes) -> dict[bytes, float] | None:
    """A ZUNION source: a sorted set's scores, or a set's members at score 1."""
    kind = ctx.kind(key)
    if kind is None:
        return None
    if kind == Kind.ZSET:
        z = ctx.read(key, Z)
        assert isinstance(z, ZSet)
        return z.scores
    if kind == Kind.SET:
        s = ctx.read(key, Kind.SET)
        assert isinstance(s, Set)
        return dict.fromkeys(s, 1.0)
    raise OpError(WRONGTYPE)


def _combine(ctx: Ctx, args: list[bytes], at: int, how: str, store: bool, name: bytes
             ) -> tuple[dict[bytes, float], bool]:
    """(member -> score, withscores) of ZUNION / ZINTER / ZDIFF and their STOREs."""
    count = integer(args[at])
    if count < 1:
        raise OpError(b"ERR at least 1 input key is needed for '%s' command" % name)
    if count > len(args) - at - 1:
        raise OpError(SYNTAX)
    keys = args[at + 1 : at + 1 + count]
    sources = [_source(ctx, key) for key in keys]
    weights = [1.0] * count
    aggregate, withscores = b"SUM", False
    j = at + 1 + count
    while j < len(args):
        word, left = args[j].upper(), len(args) - j
        if how != "diff" and word == b"WEIGHTS" and left >= count + 1:
            weights = [number(w, b"ERR weight value is not a float")
                       for w in args[j + 1 : j + 1 + count]]
            j += 1 + count
        elif how != "diff" and word == b"AGGREGATE" and left >= 2:
            aggregate = args[j + 1].upper()
            if aggregate not in (b"SUM", b"MIN", b"MAX"):
                raise OpError(SYNTAX)
            j += 2
        elif word == b"WITHSCORES" and not store:
            withscores = True
            j += 1
        else:
            raise OpError(SYNTAX)
    weighted = sorted(((s or {}, w) for s, w in zip(sources, weights, strict=True)),
                      key=lambda pair: len(pair[0])) if how != "diff" else []
    out: dict[bytes, float] = {}
    if how == "diff":
        first = sources[0] or {}
        rest = [s for s in sources[1:] if s]
        out = {m: score for m, score in first.items() if not any(m in s for s in rest)}
    elif how == "inter":
        if weighted and weighted[0][0]:
            smallest, weight = weighted[0]
            for member, score in smallest.items():
                total = _weighted(score, weight)
                for other, other_weight in weighted[1:]:
                    if member not in other:
                        break
                    total = _aggregate(total, _weighted(other[member], other_weight), aggregate)
                else:
                    out[member] = total
    else:
        for scores, weight in weighted:
            for member, score in scores.items():
                value = _weighted(score, weight)
                out[member] = value if member not in out else \
                    _aggregate(out[member], value, aggregate)
    return out, withscores


def _weighted(score: float, weight: float) -> float:
    value = score * weight
    return 0.0 if math.isnan(value) else value


def _aggregate(a: float, b: float, how: bytes) -> float:
    if how == b"SUM":
        total = a + b
        return 0.0 if math.isnan(total) else total
    return min(a, b) if how == b"MIN" else max(a, b)


def _set_op(how: str) -> Op:
    name = b"z" + how.encode()

    def op(ctx: Ctx, args: list[bytes]) -> Reply:
        found, withscores = _combine(ctx, args, 1, how, False, name)
        z = ZSet(0, found)
        return _emit(z, list(range(len(z))), withscores)
    return op


def _store_op(how: str) -> Op:
    name = b"z%sstore" % how.encode()

    def op(ctx: Ctx, args: list[bytes]) -> Reply:
        found, _ = _combine(ctx, args, 2, how, True, name)
        ctx.put(args[1], ZSet(ctx.keyspace.epoch, found) if found else None)
        if found:
            ctx.changed(args[1], name, Z)
        return len(found)
    return op


def zintercard(ctx: Ctx, args: list[bytes]) -> Reply:
    keys, after = numkeys(args, 1)
    limit = card_limit(args, after)
    sources = [_source(ctx, key) for key in keys]
    if any(s is None for s in sources):
        return 0
    present = sorted((s for s in sources if s is not None), key=len)
    found = sum(1 for m in present[0] if all(m in s for s in present[1:]))
    return min(found, limit) if limit else found


def zrandmember(ctx: Ctx, args: list[bytes]) -> Reply:
    if len(args) > 4 or (len(args) == 4 and args[3].upper() != b"WITHSCORES"):
        raise OpError(SYNTAX)
    count = integer(args[2]) if len(args) >= 3 else None
    z = _read(ctx, args[1])
    if count is None:
        return None if z is None else z.at(ctx.randrange(len(z)))[1]
    if z is None or count == 0:
        return []
    members = [member for _, member in z.order]
    if count > 0:
        chosen = members if count >= len(members) else \
            [members[i] for i in ctx.sample(len(members), count)]
    else:
        chosen = [members[ctx.randrange(len(members))] for _ in range(-count)]
    if len(args) < 4:
        return list(chosen)
    scores = z.scores
    out = Pairs()
    for member in chosen:
        out += (member, scores[member])
    return out


def zscan(ctx: Ctx, args: list[bytes]) -> Reply:
    pattern = scan_options(args, 3)
    z = _read(ctx, args[1])
    items: list[Reply] = []
    if z is not None:
        matches = compile_glob(pattern).match if pattern is not None else None
        for score, member in z.order:
            if matches is None or matches(member):
                items += (member, double_text(score))
    return [b"0", items]


def _numkeys_at(at: int) -> Callable[[list[bytes]], list[bytes]]:
    def keys(args: list[bytes]) -> list[bytes]:
        count = integer(args[at])
        return args[at + 1 : at + 1 + count]
    return keys


def _store_keys(args: list[bytes]) -> list[bytes]:
    return [args[1], *_numkeys_at(2)(args)]


COMMANDS: Final[list[TypedSpec]] = [
    row("zadd", -4, "write denyoom fast", zadd),
    row("zincrby", 4, "write denyoom fast", zincrby),
    row("zrem", -3, "write fast", zrem),
    row("zscore", 3, "readonly fast", zscore),
    row("zmscore", -3, "readonly fast", zmscore),
    row("zcard", 2, "readonly fast", zcard),
    row("zcount", 4, "readonly fast", zcount),
    row("zlexcount", 4, "readonly fast", zlexcount),
    row("zrank", 3, "readonly fast", _rank(False)),
    row("zrevrank", 3, "readonly fast", _rank(True)),
    row("zrange", -4, "readonly", _range_op("auto", None)),
    row("zrangebyscore", -4, "readonly", _range_op("score", False)),
    row("zrevrangebyscore", -4, "readonly", _range_op("score", True)),
    row("zrangebylex", -4, "readonly", _range_op("lex", False)),
    row("zrevrangebylex", -4, "readonly", _range_op("lex", True)),
    row("zrevrange", -4, "readonly", _range_op("rank", True)),
    row("zrangestore", -5, "write denyoom", zrangestore, 1, 2),
    row("zremrangebyrank", 4, "write", _remove_range("rank")),
    row("zremrangebyscore", 4, "write", _remove_range("score")),
    row("zremrangebylex", 4, "write", _remove_range("lex")),
    row("zpopmin", -2, "write fast", _zpop(False)),
    row("zpopmax", -2, "write fast", _zpop(True)),
    row("zmpop", -4, "write", zmpop, find_keys=lambda args: mpop_keys(args)[0]),
    row("zunionstore", -4, "write denyoom", _store_op("union"), find_keys=_store_keys),
    row("zinterstore", -4, "write denyoom", _store_op("inter"), find_keys=_store_keys),
    row("zdiffstore", -4, "write denyoom", _store_op("diff"), find_keys=_store_keys),
    row("zunion", -3, "readonly", _set_op("union"), find_keys=_numkeys_at(1)),
    row("zinter", -3, "readonly", _set_op("inter"), find_keys=_numkeys_at(1)),
    row("zdiff", -3, "readonly", _set_op("diff"), find_keys=_numkeys_at(1)),
    row("zintercard", -3, "readonly", zintercard, find_keys=first_keys),
    row("zrandmember", -2, "readonly", zrandmember),
    row("zscan", -3, "readonly", zscan),
]
