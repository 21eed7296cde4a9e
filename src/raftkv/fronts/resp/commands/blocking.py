"""The blocking commands: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX,
BZMPOP, XREAD and XREADGROUP with BLOCK; and CLIENT UNBLOCK's side of them.

Each is the plain pop it blocks on - LMPOP, LMOVE, RPOPLPUSH or ZMPOP, a row of
``core/typed`` - handed to the service with its keys and timeout
(``service/blocking.py``: served at once when there is something to pop, else parked
until there is). The arguments are checked here first, as Redis checks them before
it blocks; the reply is the plain pop's, reshaped to the blocking command's (BLPOP's
``[key, value]``, BZPOPMIN's ``[key, member, score]``), or a nil at the timeout.
Inside MULTI nothing blocks: the plain pop runs, as in Redis.

XREAD BLOCK reads once, linearizably; if that finds nothing it waits with each ``$``
replaced by the stream's last ID at that point, reading again (on this node) when a
stream changes. XREADGROUP BLOCK with ``>`` is a write (it moves the group on): it
runs once, then waits like a pop until a stream has entries the group has not read.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from functools import partial
from typing import Any, Final

from raftkv.core.commands import Result, TypedResult
from raftkv.core.containers import Kind
from raftkv.core.numbers import parse_int64, parse_long_double
from raftkv.core.typed.context import OpError
from raftkv.core.typed.streams import keys_of_read as streams_keys
from raftkv.core.typed.streams import read_options
from raftkv.deferred import Deferred
from raftkv.errors import Unblocked
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.client import Client
from raftkv.fronts.resp.commands.typed import encode, reply_of
from raftkv.fronts.resp.spec import SYNTAX, CommandError, Reply, later, spec
from raftkv.service.blocking import Waiting, popped

_LLONG: Final = Decimal(2**63)


def timeout_s(raw: bytes) -> float:
    """A blocking command's timeout in seconds, as Redis reads it (0: for ever)."""
    value = parse_long_double(raw)
    if value is None:
        raise CommandError("ERR timeout is not a float or out of range")
    if value < 0 or value * 1000 >= _LLONG:  # (past 64 bits Redis's ms wrap negative)
        raise CommandError("ERR timeout is negative")
    return float(value)


def _block(client: Client, line: list[bytes], keys: list[bytes], kind: Kind, timeout: float,
           shape: Any, nil: bytes) -> Reply:
    """Run the plain pop ``line`` blocking; ``shape`` makes its reply the command's."""
    enc = client.enc
    if client.transaction is not None:  # in MULTI: the plain pop, no waiting
        return later(client.service.typed(line), lambda r: _render(enc, r, shape, nil))
    waiter = client.service.blocking(line, keys, kind, timeout)
    _hold(client, waiter)

    def render(result: Result | None) -> bytes:
        if result is None:
            return nil  # the timeout passed (or CLIENT UNBLOCK ... TIMEOUT)
        return _render(enc, result, shape, nil)
    return later(waiter.future, render)  # (CLIENT UNBLOCK ... ERROR: its error reply)


def _hold(client: Client, waiter: Waiting) -> None:
    """The client is blocked on ``waiter`` until it ends (CLIENT UNBLOCK and a hang-up
    find it there)."""
    client.blocked = waiter

    def unblocked(_: object) -> None:
        if client.blocked is waiter:
            client.blocked = None
    waiter.future.add_done_callback(unblocked)


def _render(enc: p.Encoder, result: Result, shape: Any, nil: bytes) -> bytes:
    assert isinstance(result, TypedResult)
    if not result.ok:
        return reply_of(enc, result)
    return nil if not popped(result) else encode(shape(result.reply), enc)


def _same(reply: Any) -> Any:
    return reply


def _key_and_value(reply: Any) -> Any:  # LMPOP's [key, [value]] -> [key, value]
    return [reply[0], reply[1][0]]


def _key_member_score(reply: Any) -> Any:  # ZMPOP's [key, [[member, score]]]
    return [reply[0], *reply[1][0]]


def _direction(raw: bytes, words: tuple[bytes, bytes]) -> bytes:
    word = raw.upper()
    if word not in words:
        raise CommandError(SYNTAX)
    return word


def blpop(client: Client, args: list[bytes]) -> Reply:
    return _first_of(client, args, b"lmpop", b"LEFT", Kind.LIST, _key_and_value)


def brpop(client: Client, args: list[bytes]) -> Reply:
    return _first_of(client, args, b"lmpop", b"RIGHT", Kind.LIST, _key_and_value)


def _first_of(client: Client, args: list[bytes], plain: bytes, end: bytes, kind: Kind,
              shape: Any) -> Reply:
    """``key [key ...] timeout``: one element from the first key that has any, as the
    plain LMPOP / ZMPOP of one takes it."""
    keys, timeout = args[1:-1], timeout_s(args[-1])
    line = [plain, b"%d" % len(keys), *keys, end]
    return _block(client, line, keys, kind, timeout, shape, client.enc.NIL_ARRAY)


def blmove(client: Client, args: list[bytes]) -> Reply:
    ends = (b"LEFT", b"RIGHT")
    line = [b"lmove", args[1], args[2], _direction(args[3], ends), _direction(args[4], ends)]
    return _block(client, line, [args[1]], Kind.LIST, timeout_s(args[5]), _same,
                  client.enc.NIL)


def brpoplpush(client: Client, args: list[bytes]) -> Reply:
    line = [b"rpoplpush", args[1], args[2]]
    return _block(client, line, [args[1]], Kind.LIST, timeout_s(args[3]), _same,
                  client.enc.NIL)


def bzpopmin(client: Client, args: list[bytes]) -> Reply:
    return _first_of(client, args, b"zmpop", b"MIN", Kind.ZSET, _key_member_score)


def bzpopmax(client: Client, args: list[bytes]) -> Reply:
    return _first_of(client, args, b"zmpop", b"MAX", Kind.ZSET, _key_member_score)


def blmpop(client: Client, args: list[bytes]) -> Reply:
    return _mpop(client, args, (b"LEFT", b"RIGHT"), b"lmpop", Kind.LIST)


def bzmpop(client: Client, args: list[bytes]) -> Reply:
    return _mpop(client, args, (b"MIN", b"MAX"), b"zmpop", Kind.ZSET)


def _mpop(client: Client, args: list[bytes], ends: tuple[bytes, bytes], plain: bytes,
          kind: Kind) -> Reply:
    """BLMPOP / BZMPOP timeout numkeys key [key ...] end [COUNT count]."""
    timeout = timeout_s(args[1])
    count = parse_int64(args[2])
    if count is None or count < 1:
        raise CommandError("ERR numkeys should be greater than 0")
    keys_end = 3 + count
    if keys_end >= len(args):
        raise CommandError(SYNTAX)
    keys = args[3:keys_end]
    rest = [_direction(args[keys_end], ends)]
    if len(args) > keys_end + 1:
        if len(args) != keys_end + 3 or args[keys_end + 1].upper() != b"COUNT":
            raise CommandError(SYNTAX)
        how_many = parse_int64(args[keys_end + 2])
        if how_many is None or how_many < 1:
            raise CommandError("ERR count should be greater than 0")
        rest += [b"COUNT", args[keys_end + 2]]
    line = [plain, args[2], *keys, *rest]
    return _block(client, line, keys, kind, timeout, _same, client.enc.NIL_ARRAY)


def _mpop_keys(args: list[bytes]) -> list[bytes]:
    count = parse_int64(args[2]) or 0
    return args[3 : 3 + count] if count > 0 else []


def xread(client: Client, args: list[bytes]) -> Reply:
    return _read_stream(client, args, group=False)


def xreadgroup(client: Client, args: list[bytes]) -> Reply:
    return _read_stream(client, args, group=True)


def _read_stream(client: Client, args: list[bytes], group: bool) -> Reply:
    try:
        _, block_ms, _, keys, ids = read_options(args, group)
        if group and args[1].upper() != b"GROUP":
            raise CommandError(SYNTAX)
    except OpError as refused:
        raise CommandError.of(refused) from None
    line = [args[0].lower(), *args[1:]]
    enc, service = client.enc, client.service
    if block_ms is None or client.transaction is not None or (group and b">" not in ids):
        return later(service.typed(line, client.consistency), partial(reply_of, enc))
    timeout = block_ms / 1000.0
    outer: asyncio.Future[Result | None] = asyncio.get_running_loop().create_future()

    def after_first(result: Result) -> None:
        if outer.done():
            return
        if not result.ok or popped(result):
            outer.set_result(result)
            return
        again = line
        if not group:  # wait for what comes after the streams' last IDs now
            at = len(line) - len(ids)
            again = line[:at] + [i if i != b"$" else last for i, last in
                                 zip(ids, service.stream_last_ids(keys), strict=True)]
        waiter = service.blocking(again, keys, Kind.STREAM, timeout,
                                  group=args[2] if group else None, read=not group)
        _hold(client, waiter)
        waiter.future.add_done_callback(partial(_relay, outer))

    first = service.typed(line, client.consistency)
    _settled(first, after_first, outer)
    return later(outer, lambda r: enc.NIL_ARRAY if r is None else reply_of(enc, r))


def _relay(outer: asyncio.Future[Any], done: asyncio.Future[Any]) -> None:
    if outer.done():
        return
    if done.exception() is not None:
        outer.set_exception(done.exception())  # type: ignore[arg-type]
    else:
        outer.set_result(done.result())


def _settled(value: Any, then: Any, outer: asyncio.Future[Any]) -> None:
    """``then(result)`` once ``value`` (a result, a future or a Deferred) has one; its
    failure fails ``outer``."""
    if isinstance(value, Deferred):
        future, finish = value.future, value.finish
    elif isinstance(value, asyncio.Future):
        future, finish = value, None
    else:
        then(value)
        return

    def done(f: asyncio.Future[Any]) -> None:
        try:
            result = finish(f) if finish is not None else f.result()
        except BaseException as failed:
            if not outer.done():
                outer.set_exception(failed)
            return
        then(result)
    future.add_done_callback(done)


def client_unblock(client: Client, args: list[bytes]) -> bytes:
    """CLIENT UNBLOCK id [TIMEOUT | ERROR]: 1 when that client was blocked."""
    error: BaseException | None = None
    if len(args) == 4:
        reason = args[3].upper()
        if reason == b"ERROR":
            error = Unblocked("client unblocked via CLIENT UNBLOCK")
        elif reason != b"TIMEOUT":
            raise CommandError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    wanted = parse_int64(args[2])
    if wanted is None:
        raise CommandError("ERR value is not an integer or out of range")
    for other in client.state.clients:
        if other.id == wanted and other.blocked is not None:
            return p.ONE if client.service.unblock(other.blocked, error) else p.ZERO
    return p.ZERO


COMMANDS: Final = [
    spec("blpop", -3, "write blocking", blpop, 1, -2),
    spec("brpop", -3, "write blocking", brpop, 1, -2),
    spec("blmove", 6, "write denyoom blocking", blmove, 1, 2),
    spec("brpoplpush", 4, "write denyoom blocking", brpoplpush, 1, 2),
    spec("blmpop", -5, "write blocking movablekeys", blmpop, find_keys=_mpop_keys),
    spec("bzpopmin", -3, "write blocking fast", bzpopmin, 1, -2),
    spec("bzpopmax", -3, "write blocking fast", bzpopmax, 1, -2),
    spec("bzmpop", -5, "write blocking movablekeys", bzmpop, find_keys=_mpop_keys),
    spec("xread", -4, "readonly blocking movablekeys", xread, find_keys=streams_keys),
    spec("xreadgroup", -7, "write blocking movablekeys", xreadgroup, find_keys=streams_keys),
]
