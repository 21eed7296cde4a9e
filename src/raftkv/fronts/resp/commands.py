"""The RESP command table: one entry per command with arity, flags and handler.

Arity follows Redis: ``n`` means exactly n arguments including the name, ``-n`` at
least n. Arity, authentication, key permissions and the subscribe-mode rule are
checked centrally (``dispatch``) before a handler runs; each handler makes one
service call and encodes the reply. Replies and error texts are Redis's own.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from raftkv.core.commands import Cond, Entry, ExpireWhen, Outcome, Result
from raftkv.core.state_machine import parse_int64
from raftkv.errors import OutOfMemory, RaftKVError
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.glob import compile_glob, literal_prefix
from raftkv.service.auth import Role
from raftkv.service.service import MAX_KEY_BYTES

if TYPE_CHECKING:
    from raftkv.fronts.resp.server import Connection

log = logging.getLogger("raftkv.resp")

class Later:
    """A reply that waits on one future (a commit, a read barrier): the connection
    adds one callback and calls ``resolve`` when it is done - no chained futures."""

    __slots__ = ("future", "render", "times")

    def __init__(self, future: asyncio.Future[Any], render: Callable[[Any], bytes],
                 times: int = 1) -> None:
        self.future = future
        self.render = render
        self.times = times  # how many commands it answers (a batch fails as a whole)

    def resolve(self) -> bytes:
        try:
            return self.render(self.future.result())  # (raises the future's exception)
        except asyncio.CancelledError:
            return p.error_reply("ERR command cancelled") * self.times
        except CommandError as refused:  # (one name per type: mypyc types the name)
            return p.error_reply(str(refused)) * self.times
        except RaftKVError as err:
            return p.error_reply(error_text(err)) * self.times
        except Exception:  # the reply must still go out, in order
            log.exception("RESP reply failed")
            return p.error_reply("ERR internal error")


Reply: TypeAlias = "bytes | Later"


def later(result: Any, render: Callable[[Any], bytes]) -> Reply:
    """``render(result)`` now for a value, or a Later for a future."""
    if isinstance(result, asyncio.Future):
        return Later(result, render)
    return render(result)
Handler = Callable[["Connection", list[bytes]], Reply]

WRONG_INT = "ERR value is not an integer or out of range"
SYNTAX = "ERR syntax error"
NOPERM = "NOPERM this user has no permissions to access one of the keys used as arguments"
MAX_MS = 2**62


class CommandError(Exception):
    """A Redis error reply (the message starts with its code)."""


class CommandStats:
    """INFO commandstats for one command: calls, time in the handler, and calls refused
    before (``rejected``) or by (``failed``) the handler, as Redis 7 counts them."""

    __slots__ = ("calls", "failed", "ns", "rejected")

    def __init__(self) -> None:
        self.calls = 0
        self.ns = 0
        self.rejected = 0
        self.failed = 0

    def reset(self) -> None:
        self.calls = self.ns = self.rejected = self.failed = 0


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    arity: int
    flags: frozenset[str]
    handler: Handler
    first_key: int = 0  # argument positions of keys, Redis's key spec
    last_key: int = 0  # -1: through the last argument
    key_step: int = 1
    stats: CommandStats = field(default_factory=CommandStats)

    def keys(self, args: list[bytes]) -> list[bytes]:
        if not self.first_key:
            return []
        last = len(args) - 1 if self.last_key < 0 else self.last_key
        return args[self.first_key : last + 1 : self.key_step]


TABLE: dict[bytes, Spec] = {}


def command(name: str, arity: int, flags: str = "", first_key: int = 0, last_key: int = 0,
            key_step: int = 1) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        TABLE[name.encode()] = Spec(name, arity, frozenset(flags.split()), fn, first_key,
                                    last_key, key_step)
        return fn
    return register


def to_int(raw: bytes) -> int:
    value = parse_int64(raw)
    if value is None:
        raise CommandError(WRONG_INT)
    return value


def _result_error(result: Result, command: str = "") -> None:
    if result.outcome is Outcome.NOT_INTEGER:
        raise CommandError(WRONG_INT)
    if result.outcome is Outcome.OVERFLOW:
        raise CommandError("ERR increment or decrement would overflow")


# --- connection, server --------------------------------------------------------------

@command("ping", -1, "fast pubsub")
def ping(conn: Connection, args: list[bytes]) -> Reply:
    if len(args) > 2:
        raise CommandError("ERR wrong number of arguments for 'ping' command")
    if conn.subscriptions or conn.patterns:
        return conn.enc.push([p.bulk(b"pong"), p.bulk(args[1] if len(args) > 1 else b"")])
    return conn.enc.bulk(args[1]) if len(args) > 1 else p.PONG


@command("echo", 2, "fast")
def echo(conn: Connection, args: list[bytes]) -> Reply:
    return p.bulk(args[1])


@command("quit", -1, "fast noauth pubsub")
def quit_(conn: Connection, args: list[bytes]) -> Reply:
    conn.close_after_reply = True
    return p.OK


@command("auth", -2, "fast noauth")
def auth(conn: Connection, args: list[bytes]) -> Reply:
    if len(args) > 3:
        raise CommandError(SYNTAX)
    authenticator = conn.server.authenticator
    if not authenticator.enabled:
        raise CommandError("ERR AUTH <password> called without any password configured for "
                           "the default user. Are you sure your configuration is correct?")
    principal = authenticator.authenticate(args[-1])
    if principal is None:
        raise CommandError("WRONGPASS invalid username-password pair or user is disabled.")
    conn.principal = principal
    conn.reader.limited = False
    return p.OK


@command("hello", -1, "fast noauth")
def hello(conn: Connection, args: list[bytes]) -> Reply:
    rest = args[1:]
    if rest:
        try:
            version = int(rest[0])
        except ValueError:
            raise CommandError("ERR Protocol version is not an integer or out of range") from None
        if version not in (2, 3):
            raise CommandError("NOPROTO unsupported protocol version")
        i = 1
        while i < len(rest):
            option = rest[i].upper()
            if option == b"AUTH" and i + 2 < len(rest):
                auth(conn, [b"auth", rest[i + 1], rest[i + 2]])
                i += 3
            elif option == b"SETNAME" and i + 1 < len(rest):
                conn.name = client_name(rest[i + 1])
                i += 2
            else:
                raise CommandError(f"ERR Syntax error in HELLO option "
                                   f"'{rest[i].decode(errors='replace')}'")
        conn.enc = p.RESP3 if version == 3 else p.RESP2
    if conn.principal is None:
        raise CommandError("NOAUTH HELLO must be called with the client already authenticated, "
                           "otherwise the HELLO <proto> AUTH <user> <pass> option can be used "
                           "to authenticate the client and select the RESP protocol version "
                           "at the same time")
    return conn.enc.map([
        (p.bulk(b"server"), p.bulk(b"redis")),
        (p.bulk(b"version"), p.bulk(conn.server.redis_version)),
        (p.bulk(b"proto"), p.integer(conn.enc.version)),
        (p.bulk(b"id"), p.integer(conn.id)),
        (p.bulk(b"mode"), p.bulk(b"standalone")),
        (p.bulk(b"role"), p.bulk(b"master")),
        (p.bulk(b"modules"), p.EMPTY_ARRAY),
    ])


def client_name(name: bytes) -> bytes | None:
    if any(c <= 32 or c > 126 for c in name):
        raise CommandError("ERR Client names cannot contain spaces, newlines or special "
                           "characters.")
    return name or None


@command("select", 2, "fast")
def select(conn: Connection, args: list[bytes]) -> Reply:
    if to_int(args[1]) != 0:
        raise CommandError("ERR DB index is out of range")
    return p.OK


@command("command", -1, "")
def command_(conn: Connection, args: list[bytes]) -> Reply:
    sub = args[1].upper() if len(args) > 1 else None
    if sub is None:
        return p.raw_array([_command_info(spec) for spec in TABLE.values()])
    if sub == b"COUNT":
        return p.integer(len(TABLE))
    if sub == b"INFO":
        return p.raw_array([_command_info(TABLE[n.lower()]) if n.lower() in TABLE
                            else conn.enc.NIL for n in args[2:]])
    if sub == b"DOCS":
        return p.EMPTY_ARRAY  # no documentation; redis-cli works without it
    raise CommandError(f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. Try "
                       f"COMMAND HELP.")


def _command_info(spec: Spec) -> bytes:
    """Redis 7's ten fields: name, arity, flags, first/last key, step, ACL categories,
    tips, key specs, subcommands (the last three empty here)."""
    flags = p.raw_array([p.simple(f) for f in sorted(spec.flags - {"noauth"})])
    categories = ["@write" if "write" in spec.flags else "@read" if "readonly" in spec.flags
                  else "@connection"]
    return p.raw_array([p.bulk(spec.name.encode()), p.integer(spec.arity), flags,
                        p.integer(spec.first_key), p.integer(spec.last_key),
                        p.integer(spec.key_step if spec.first_key else 0),
                        p.raw_array([p.simple(c) for c in categories]),
                        p.EMPTY_ARRAY, p.EMPTY_ARRAY, p.EMPTY_ARRAY])


# --- strings --------------------------------------------------------------------------

@command("get", 2, "readonly fast", 1, 1)
def get(conn: Connection, args: list[bytes]) -> Reply:
    value = conn.service.get_value(args[1], conn.consistency)
    if isinstance(value, asyncio.Future):
        return Later(value, functools.partial(_value_reply, conn))
    return _value_reply(conn, value)


def _value_reply(conn: Connection, value: bytes | None) -> bytes:
    stats = conn.server.stats
    if value is None:
        stats.keyspace_misses += 1
        return conn.enc.NIL
    stats.keyspace_hits += 1
    return b"$%d\r\n%s\r\n" % (len(value), value)


@command("set", -3, "write", 1, 1)
def set_(conn: Connection, args: list[bytes]) -> Reply:
    key, value = args[1], args[2]
    if len(args) == 3:  # plain SET: joins this loop turn's batch of plain puts
        return Later(conn.service.put_many([(key, value)]), _ok)
    cond, keep_ttl, want_old, expires = Cond.NONE, False, False, None
    now = conn.service.clock.now_ms()
    i = 3
    while i < len(args):
        option = args[i].upper()
        has_arg = i + 1 < len(args)
        if option == b"NX" and cond is Cond.NONE:
            cond = Cond.ABSENT
        elif option == b"XX" and cond is Cond.NONE:
            cond = Cond.EXISTS
        elif option == b"GET":
            want_old = True
        elif option == b"KEEPTTL" and expires is None:
            keep_ttl = True
        elif option in (b"EX", b"PX", b"EXAT", b"PXAT") and has_arg and expires is None \
                and not keep_ttl:
            expires = _deadline(args[i + 1], option, now, "set")
            i += 1
        else:
            raise CommandError(SYNTAX)
        i += 1
    future = conn.service.put(key, value, expires_at_ms=expires, keep_ttl=keep_ttl, cond=cond)

    def render(result: Result) -> bytes:
        if want_old:
            previous = result.previous
            return conn.enc.bulk(previous.value if previous else None)
        return p.OK if result.ok else conn.enc.NIL
    return later(future, render)


def _ok(_: object) -> bytes:
    return p.OK


BULK_HEADERS: Final = [b"$%d\r\n" % size for size in range(4096)]
SET_NAMES = frozenset({b"SET", b"set", b"Set"})
GET_NAMES = frozenset({b"GET", b"get", b"Get"})
MIN_RUN = 2


SET_STATS = TABLE[b"set"].stats
GET_STATS = TABLE[b"get"].stats


def batch_run(conn: Connection, commands: list[list[bytes]], start: int
              ) -> tuple[Reply, int] | None:
    """A pipeline's run of plain ``SET key value`` (one MultiPut: one proposal) or
    plain ``GET key`` (one read barrier, one clock read) from ``start`` on, answered
    as one reply, with the end of the run; None when there is no run. Only for
    connections where every check ``dispatch`` makes passes (see the caller)."""
    name = commands[start][0]
    if name in SET_NAMES:
        limit = conn.service.limits.max_value_bytes
        items: list[tuple[bytes, bytes]] = []
        for args in itertools.islice(commands, start, None):
            if len(args) != 3 or args[0] not in SET_NAMES \
                    or not 0 < len(args[1]) <= MAX_KEY_BYTES or len(args[2]) > limit:
                break
            items.append((args[1], args[2]))
        count = len(items)
        if count < MIN_RUN:
            return None
        conn.server.stats.commands += count
        started = time.perf_counter_ns()
        try:
            future = conn.service.put_many(items)
        except RaftKVError as exc:
            return p.error_reply(error_text(exc)) * count, start + count
        finally:
            _count_run(SET_STATS, count, started)
        return Later(future, lambda _: p.OK * count, count), start + count
    if name not in GET_NAMES:
        return None
    keys: list[bytes] = []
    for args in itertools.islice(commands, start, None):
        if len(args) != 2 or args[0] not in GET_NAMES or not 0 < len(args[1]) <= MAX_KEY_BYTES:
            break
        keys.append(args[1])
    count = len(keys)
    if count < MIN_RUN:
        return None
    conn.server.stats.commands += count
    started = time.perf_counter_ns()
    try:
        values = conn.service.get_values(keys, conn.consistency)
    except RaftKVError as exc:
        return p.error_reply(error_text(exc)) * count, start + count
    finally:
        _count_run(GET_STATS, count, started)
    if isinstance(values, asyncio.Future):
        return Later(values, functools.partial(_values_reply, conn), count), start + count
    return _values_reply(conn, values), start + count


def _count_run(stats: CommandStats, count: int, started_ns: int) -> None:
    stats.calls += count
    stats.ns += time.perf_counter_ns() - started_ns


def _values_reply(conn: Connection, values: list[bytes | None]) -> bytes:
    stats, nil = conn.server.stats, conn.enc.NIL
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


def _deadline(raw: bytes, unit: bytes, now_ms: int, name: str) -> int:
    """An absolute deadline in ms from EX/PX/EXAT/PXAT (relative times become absolute
    here, before anything is logged)."""
    amount = to_int(raw)
    if amount <= 0:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    ms = amount * 1000 if unit in (b"EX", b"EXAT") else amount
    deadline = ms if unit in (b"EXAT", b"PXAT") else now_ms + ms
    if ms > MAX_MS or deadline > MAX_MS:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    return deadline


@command("setnx", 3, "write fast", 1, 1)
def setnx(conn: Connection, args: list[bytes]) -> Reply:
    future = conn.service.put(args[1], args[2], cond=Cond.ABSENT)
    return later(future, lambda r: p.ONE if r.ok else p.ZERO)


@command("getset", 3, "write fast", 1, 1)
def getset(conn: Connection, args: list[bytes]) -> Reply:
    future = conn.service.put(args[1], args[2])
    return later(future, lambda r: conn.enc.bulk(r.previous.value if r.previous else None))


@command("getdel", 2, "write fast", 1, 1)
def getdel(conn: Connection, args: list[bytes]) -> Reply:
    future = conn.service.delete(args[1])
    return later(future, lambda r: conn.enc.bulk(r.previous.value if r.ok and r.previous
                                                 else None))


@command("del", -2, "write", 1, -1)
def del_(conn: Connection, args: list[bytes]) -> Reply:
    futures = [conn.service.delete(key) for key in args[1:]]
    return _count_ok(futures)


TABLE[b"unlink"] = Spec("unlink", -2, frozenset({"write", "fast"}), del_, 1, -1)


def _count_ok(futures: list[asyncio.Future[Result]]) -> Reply:
    gathered = asyncio.gather(*futures)
    return later(gathered, lambda results: p.integer(sum(1 for r in results if r.ok)))


@command("exists", -2, "readonly fast", 1, -1)
def exists(conn: Connection, args: list[bytes]) -> Reply:
    def count(_: object = None) -> bytes:
        keyspace = conn.service.state_machine.keyspace
        now = conn.service.clock.now_ms()
        return p.integer(sum(1 for key in args[1:] if keyspace.get(key, now) is not None))
    barrier = conn.service.replicator.read_barrier(conn.consistency)
    return count() if barrier is None else later(barrier, count)


@command("mget", -2, "readonly fast", 1, -1)
def mget(conn: Connection, args: list[bytes]) -> Reply:
    def values(_: object = None) -> bytes:
        keyspace = conn.service.state_machine.keyspace
        now = conn.service.clock.now_ms()
        return conn.enc.array([keyspace.value(key, now) for key in args[1:]])
    barrier = conn.service.replicator.read_barrier(conn.consistency)
    return values() if barrier is None else later(barrier, values)


@command("mset", -3, "write", 1, -1, 2)
def mset(conn: Connection, args: list[bytes]) -> Reply:
    if len(args) % 2 == 0:
        raise CommandError("ERR wrong number of arguments for 'mset' command")
    items = list(zip(args[1::2], args[2::2], strict=True))
    return later(conn.service.multi_put(items), lambda _: p.OK)


@command("msetnx", -3, "write", 1, -1, 2)
def msetnx(conn: Connection, args: list[bytes]) -> Reply:
    if len(args) % 2 == 0:
        raise CommandError("ERR wrong number of arguments for 'msetnx' command")
    items = list(zip(args[1::2], args[2::2], strict=True))
    future = conn.service.multi_put(items, only_if_none_exist=True)
    return later(future, lambda r: p.ONE if r.ok else p.ZERO)


def _incr(conn: Connection, key: bytes, delta: int) -> Reply:
    def render(result: Result) -> bytes:
        _result_error(result)
        assert result.entry is not None
        return b":%s\r\n" % result.entry.value
    return later(conn.service.incr_by(key, delta), render)


@command("incr", 2, "write fast", 1, 1)
def incr(conn: Connection, args: list[bytes]) -> Reply:
    return _incr(conn, args[1], 1)


@command("decr", 2, "write fast", 1, 1)
def decr(conn: Connection, args: list[bytes]) -> Reply:
    return _incr(conn, args[1], -1)


@command("incrby", 3, "write fast", 1, 1)
def incrby(conn: Connection, args: list[bytes]) -> Reply:
    return _incr(conn, args[1], to_int(args[2]))


@command("decrby", 3, "write fast", 1, 1)
def decrby(conn: Connection, args: list[bytes]) -> Reply:
    delta = to_int(args[2])
    if delta == -(2**63):
        raise CommandError("ERR decrement would overflow")
    return _incr(conn, args[1], -delta)


@command("append", 3, "write fast", 1, 1)
def append(conn: Connection, args: list[bytes]) -> Reply:
    def render(result: Result) -> bytes:
        assert result.entry is not None
        return p.integer(len(result.entry.value))
    return later(conn.service.append(args[1], args[2]), render)


@command("strlen", 2, "readonly fast", 1, 1)
def strlen(conn: Connection, args: list[bytes]) -> Reply:
    return later(conn.service.get(args[1], conn.consistency),
                lambda e: p.integer(len(e.value) if e else 0))


@command("type", 2, "readonly fast", 1, 1)
def type_(conn: Connection, args: list[bytes]) -> Reply:
    return later(conn.service.get(args[1], conn.consistency),
                lambda e: b"+string\r\n" if e else b"+none\r\n")


# --- expiry ---------------------------------------------------------------------------

_EXPIRE_OPTIONS: Final = {b"NX": 1, b"XX": 2, b"GT": 4, b"LT": 8}
_INT64_MAX: Final = 2**63 - 1


def _expire(conn: Connection, args: list[bytes], unit: bytes, name: str) -> Reply:
    """EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT [NX|XX|GT|LT] as Redis 7's
    expireGenericCommand: options first, then the time, which is an error only where
    it overflows 64 bits; a deadline already past deletes the key."""
    flags = 0
    for option in args[3:]:
        bit = _EXPIRE_OPTIONS.get(option.upper())
        if bit is None:
            raise CommandError(f"ERR Unsupported option {option.decode(errors='replace')}")
        flags |= bit
    if flags & 1 and flags & 14:
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if flags & 4 and flags & 8:
        raise CommandError("ERR GT and LT options at the same time are not compatible")
    amount = to_int(args[2])
    if unit in (b"EX", b"EXAT"):
        if abs(amount) > _INT64_MAX // 1000:
            raise CommandError(f"ERR invalid expire time in '{name}' command")
        amount *= 1000
    base = 0 if unit in (b"EXAT", b"PXAT") else conn.service.clock.now_ms()
    if amount > _INT64_MAX - base:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    when = (ExpireWhen.NX if flags & 1 else ExpireWhen.GT if flags & 4
            else ExpireWhen.XX_LT if flags & 10 == 10 else ExpireWhen.LT if flags & 8
            else ExpireWhen.XX if flags & 2 else ExpireWhen.ALWAYS)
    future = conn.service.expire(args[1], amount + base, when=when)
    return later(future, lambda r: p.ONE if r.ok and r.affected else p.ZERO)


@command("expire", -3, "write fast", 1, 1)
def expire(conn: Connection, args: list[bytes]) -> Reply:
    return _expire(conn, args, b"EX", "expire")


@command("pexpire", -3, "write fast", 1, 1)
def pexpire(conn: Connection, args: list[bytes]) -> Reply:
    return _expire(conn, args, b"PX", "pexpire")


@command("expireat", -3, "write fast", 1, 1)
def expireat(conn: Connection, args: list[bytes]) -> Reply:
    return _expire(conn, args, b"EXAT", "expireat")


@command("pexpireat", -3, "write fast", 1, 1)
def pexpireat(conn: Connection, args: list[bytes]) -> Reply:
    return _expire(conn, args, b"PXAT", "pexpireat")


@command("persist", 2, "write fast", 1, 1)
def persist(conn: Connection, args: list[bytes]) -> Reply:
    future = conn.service.expire(args[1], None)
    return later(future, lambda r: p.ONE if r.ok and r.affected else p.ZERO)


def _ttl(conn: Connection, key: bytes, divisor: int) -> Reply:
    def render(entry: Entry | None) -> bytes:
        if entry is None:
            return p.integer(-2)
        if entry.expires_at_ms is None:
            return p.integer(-1)
        left = max(0, entry.expires_at_ms - conn.service.clock.now_ms())
        return p.integer((left + divisor // 2) // divisor)  # Redis rounds TTL
    return later(conn.service.get(key, conn.consistency), render)


@command("ttl", 2, "readonly fast", 1, 1)
def ttl(conn: Connection, args: list[bytes]) -> Reply:
    return _ttl(conn, args[1], 1000)


@command("pttl", 2, "readonly fast", 1, 1)
def pttl(conn: Connection, args: list[bytes]) -> Reply:
    return _ttl(conn, args[1], 1)


# --- keys and scans -------------------------------------------------------------------

class ScanCursors:
    """SCAN cursors are integers (clients parse them as such) naming the last key
    returned; the key itself lives here, oldest cursors forgotten first."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._keys: OrderedDict[int, bytes] = OrderedDict()
        self._capacity = capacity

    def issue(self, last_key: bytes) -> int:
        cursor = int.from_bytes(os.urandom(6), "big") | 1
        self._keys[cursor] = last_key
        if len(self._keys) > self._capacity:
            self._keys.popitem(last=False)
        return cursor

    def resolve(self, cursor: int) -> bytes | None:
        return self._keys.get(cursor)


@command("scan", -2, "readonly", 0)
def scan(conn: Connection, args: list[bytes]) -> Reply:
    try:
        cursor = int(args[1])
    except ValueError:
        raise CommandError("ERR invalid cursor") from None
    pattern, count = None, 10
    i = 2
    while i < len(args):
        option = args[i].upper()
        if option == b"MATCH" and i + 1 < len(args):
            pattern = args[i + 1]
        elif option == b"COUNT" and i + 1 < len(args):
            count = to_int(args[i + 1])
            if count < 1:
                raise CommandError(SYNTAX)
        elif option == b"TYPE" and i + 1 < len(args):
            if args[i + 1].lower() != b"string":
                return p.raw_array([p.bulk(b"0"), p.EMPTY_ARRAY])
        else:
            raise CommandError(SYNTAX)
        i += 2
    after = None
    if cursor != 0:
        after = conn.server.cursors.resolve(cursor)
        if after is None:
            raise CommandError("ERR invalid cursor")
    prefix = literal_prefix(pattern) if pattern else b""
    matcher = compile_glob(pattern).match if pattern else None
    keyspace = conn.service.state_machine.keyspace
    now = conn.service.clock.now_ms()
    found: list[bytes] = []
    last = None
    for examined, key in enumerate(keyspace.iter_keys(prefix, after), start=1):
        last = key
        if (matcher is None or matcher(key)) and keyspace.get(key, now) is not None \
                and conn.principal_may_read(key):
            found.append(key)
        if examined >= count:
            break
    else:
        last = None  # exhausted
    next_cursor = b"0" if last is None else str(conn.server.cursors.issue(last)).encode()
    return p.raw_array([p.bulk(next_cursor), p.array(found)])


@command("keys", 2, "readonly")
def keys(conn: Connection, args: list[bytes]) -> Reply:
    pattern = args[1]
    matcher = compile_glob(pattern).match
    keyspace = conn.service.state_machine.keyspace
    now = conn.service.clock.now_ms()
    return p.array([k for k in keyspace.iter_keys(literal_prefix(pattern))
                    if matcher(k) and keyspace.get(k, now) is not None
                    and conn.principal_may_read(k)])


# --- pub/sub ----------------------------------------------------------------------------

@command("publish", 3, "pubsub fast")
def publish(conn: Connection, args: list[bytes]) -> Reply:
    return p.integer(conn.server.pubsub.publish(args[1], args[2]))


def _subscription_reply(conn: Connection, kind: bytes, name: bytes | None) -> bytes:
    return conn.enc.push([p.bulk(kind), conn.enc.bulk(name), p.integer(conn.subscription_count)])


def _join(conn: Connection, names: list[bytes], mine: set[bytes],
          table: dict[bytes, set[Any]], kind: bytes) -> bytes:
    out = []
    for name in names:
        if name not in mine:
            mine.add(name)
            conn.server.pubsub.add(table, conn, name)
        out.append(_subscription_reply(conn, kind, name))
    return b"".join(out)


def _leave(conn: Connection, names: list[bytes], mine: set[bytes],
           table: dict[bytes, set[Any]], kind: bytes) -> bytes:
    names = names or sorted(mine)  # no names: leave them all
    if not names:
        return _subscription_reply(conn, kind, None)
    out = []
    for name in names:
        mine.discard(name)
        conn.server.pubsub.remove(table, conn, name)
        out.append(_subscription_reply(conn, kind, name))
    return b"".join(out)


@command("subscribe", -2, "pubsub")
def subscribe(conn: Connection, args: list[bytes]) -> Reply:
    return _join(conn, args[1:], conn.subscriptions, conn.server.pubsub.channels, b"subscribe")


@command("unsubscribe", -1, "pubsub")
def unsubscribe(conn: Connection, args: list[bytes]) -> Reply:
    return _leave(conn, args[1:], conn.subscriptions, conn.server.pubsub.channels,
                  b"unsubscribe")


@command("psubscribe", -2, "pubsub")
def psubscribe(conn: Connection, args: list[bytes]) -> Reply:
    return _join(conn, args[1:], conn.patterns, conn.server.pubsub.patterns, b"psubscribe")


@command("punsubscribe", -1, "pubsub")
def punsubscribe(conn: Connection, args: list[bytes]) -> Reply:
    return _leave(conn, args[1:], conn.patterns, conn.server.pubsub.patterns, b"punsubscribe")


# --- dispatch ---------------------------------------------------------------------------

def unknown_command(args: list[bytes]) -> str:
    rest = "".join(f"'{a[:128].decode(errors='replace')}' " for a in args[1:])
    return (f"ERR unknown command '{args[0][:128].decode(errors='replace')}', with args "
            f"beginning with: {rest}")


def dispatch(conn: Connection, args: list[bytes]) -> Reply:
    """Check arity, auth, permissions and mode centrally, then run the handler."""
    name = args[0].lower()
    spec = TABLE.get(name)
    if spec is None:
        return p.error_reply(unknown_command(args))
    conn.server.stats.commands += 1
    refusal = _refusal(conn, spec, args)
    if refusal is not None:
        spec.stats.rejected += 1
        return p.error_reply(refusal)
    conn.last_command = spec.name
    stats = spec.stats
    started = time.perf_counter_ns()
    try:
        reply = spec.handler(conn, args)
    except CommandError as refused:  # (one name per type: mypyc types the name)
        stats.failed += 1
        reply = p.error_reply(str(refused))
    except RaftKVError as exc:
        stats.failed += 1
        reply = p.error_reply(error_text(exc))
    except Exception:  # a bug: the client still gets its reply, in order
        log.exception("RESP command %r failed", spec.name)
        stats.failed += 1
        reply = p.error_reply("ERR internal error")
    stats.calls += 1
    stats.ns += time.perf_counter_ns() - started
    return reply


def _refusal(conn: Connection, spec: Spec, args: list[bytes]) -> str | None:
    """Why the command may not run here, as Redis says it; None when it may."""
    if conn.principal is None and "noauth" not in spec.flags:
        return "NOAUTH Authentication required."
    arity = spec.arity
    if (arity > 0 and len(args) != arity) or (arity < 0 and len(args) < -arity):
        return f"ERR wrong number of arguments for '{spec.name}' command"
    if (conn.subscriptions or conn.patterns) and (
            "pubsub" not in spec.flags or spec.name == "publish"):
        return (f"ERR Can't execute '{spec.name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                f"PING / QUIT / RESET are allowed in this context")
    principal = conn.principal
    if principal is not None and not principal.unrestricted:
        if "admin" in spec.flags and principal.role < Role.ADMIN:
            return f"NOPERM this user has no permissions to run the '{spec.name}' command"
        write = "write" in spec.flags
        if write and principal.role < Role.WRITE:
            return NOPERM
        for key in spec.keys(args):
            if not (principal.may_write(key) if write else principal.may_read(key)):
                return NOPERM
    return None


def error_text(exc: RaftKVError) -> str:
    """raftkv errors as RESP error strings (the front's one mapping table)."""
    from raftkv import errors

    if isinstance(exc, OutOfMemory):
        return "OOM command not allowed when used memory > 'maxmemory'."
    if isinstance(exc, errors.TooLarge):
        return "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    if isinstance(exc, errors.NotLeader):
        return f"READONLY You can't write against a read only replica. (leader: " \
               f"{exc.leader_id or 'unknown'})"
    if isinstance(exc, errors.Unavailable):
        return "TRYAGAIN no leader is available; the write was not applied"
    if isinstance(exc, errors.CommitTimeout):
        return "TIMEOUT the write's outcome is unknown (commit timed out)"
    if isinstance(exc, errors.InvalidArgument):
        return f"ERR {exc}"
    if isinstance(exc, errors.StorageError):
        return f"MISCONF {exc}"
    return f"ERR {exc}"



