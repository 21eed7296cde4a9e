"""The generic (keys) family: DEL/UNLINK, EXISTS, TYPE, the EXPIRE family, PERSIST,
TTL/PTTL, SCAN and KEYS. SCAN and KEYS read through the service like GET, at the
connection's consistency, so a follower answers them no staler than it answers GET."""

from __future__ import annotations

from typing import Final

from raftkv.core.commands import Entry, Outcome, Result
from raftkv.core.containers import KIND_NAMES, Kind
from raftkv.core.numbers import parse_int64
from raftkv.core.typed.args import expire_options
from raftkv.core.typed.context import OpError
from raftkv.core.typed.strings import time_to_live
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.client import Client
from raftkv.fronts.resp.spec import SYNTAX, CommandError, Reply, later, spec, to_int
from raftkv.service.service import KeyPage

KINDS_BY_NAME: Final = {name: int(kind) for kind, name in KIND_NAMES.items()}


def del_(client: Client, args: list[bytes]) -> Reply:
    """DEL / UNLINK: every key in one log entry, so the deletes are atomic."""
    return later(client.service.delete_many(args[1:]), lambda result: p.integer(result.affected))


def exists(client: Client, args: list[bytes]) -> Reply:
    return later(client.service.exists(args[1:], client.consistency), p.integer)


def type_(client: Client, args: list[bytes]) -> Reply:
    return later(client.service.peek(args[1], client.consistency),
                 lambda e: b"+%s\r\n" % KIND_NAMES[Kind(e.kind)] if e else b"+none\r\n")


def _expire(client: Client, args: list[bytes], unit: bytes, name: str) -> Reply:
    """EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT [NX|XX|GT|LT] as Redis 7's
    expireGenericCommand: options first, then the time, which is an error only where
    it overflows 64 bits; a deadline already past deletes the key."""
    try:
        deadline, when = expire_options(args, unit, name, client.service.clock.now_ms())
    except OpError as refused:
        raise CommandError.of(refused) from None
    future = client.service.expire(args[1], deadline, when=when)
    return later(future, _affected)


def _affected(result: Result) -> bytes:
    return p.ONE if result.ok and result.affected else p.ZERO


def expire(client: Client, args: list[bytes]) -> Reply:
    return _expire(client, args, b"EX", "expire")


def pexpire(client: Client, args: list[bytes]) -> Reply:
    return _expire(client, args, b"PX", "pexpire")


def expireat(client: Client, args: list[bytes]) -> Reply:
    return _expire(client, args, b"EXAT", "expireat")


def pexpireat(client: Client, args: list[bytes]) -> Reply:
    return _expire(client, args, b"PXAT", "pexpireat")


def persist(client: Client, args: list[bytes]) -> Reply:
    return later(client.service.expire(args[1], None), _affected)


def _ttl(client: Client, key: bytes, divisor: int) -> Reply:
    def render(entry: Entry | None) -> bytes:
        return p.integer(time_to_live(entry, client.service.clock.now_ms(), divisor))
    return later(client.service.peek(key, client.consistency), render)  # (not an access)


def ttl(client: Client, args: list[bytes]) -> Reply:
    return _ttl(client, args[1], 1000)


def pttl(client: Client, args: list[bytes]) -> Reply:
    return _ttl(client, args[1], 1)


def scan(client: Client, args: list[bytes]) -> Reply:
    """SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]: COUNT stored keys examined per
    call; a key present for the whole iteration is returned exactly once."""
    try:
        cursor = int(args[1])
    except ValueError:
        raise CommandError("ERR invalid cursor") from None
    pattern, count, kind = None, 10, None
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
            kind = KINDS_BY_NAME.get(args[i + 1].lower(), -1)
        else:
            raise CommandError(SYNTAX)
        i += 2
    after = None
    if cursor != 0:
        after = client.state.cursors.resolve(cursor)
        if after is None:
            raise CommandError("ERR invalid cursor")

    def render(page: KeyPage) -> bytes:
        last = page.last
        next_cursor = b"0" if last is None else b"%d" % client.state.cursors.issue(last)
        return p.raw_array([p.bulk(next_cursor), p.array(page.keys)])
    return later(client.service.scan_keys(pattern=pattern, after=after, count=count,
                                          visible=client.may_read, kind=kind,
                                          consistency=client.consistency), render)


def keys(client: Client, args: list[bytes]) -> Reply:
    page = client.service.scan_keys(pattern=args[1], visible=client.may_read,
                                    consistency=client.consistency)
    return later(page, lambda page: p.array(page.keys))


def touch(client: Client, args: list[bytes]) -> Reply:
    return later(client.service.touch(args[1:], client.consistency), p.integer)


def _expire_time(client: Client, key: bytes, divisor: int) -> Reply:
    """EXPIRETIME / PEXPIRETIME: the absolute deadline (-2 no key, -1 no deadline)."""
    def render(entry: Entry | None) -> bytes:
        if entry is None:
            return p.integer(-2)
        if entry.expires_at_ms is None:
            return p.integer(-1)
        return p.integer((entry.expires_at_ms + divisor // 2) // divisor)  # Redis rounds
    return later(client.service.peek(key, client.consistency), render)


def expiretime(client: Client, args: list[bytes]) -> Reply:
    return _expire_time(client, args[1], 1000)


def pexpiretime(client: Client, args: list[bytes]) -> Reply:
    return _expire_time(client, args[1], 1)


def randomkey(client: Client, args: list[bytes]) -> Reply:
    return later(client.service.random_key(client.may_read, client.consistency),
                 client.enc.bulk)


LFU_ONLY: Final = ("ERR An LFU maxmemory policy is not selected, access frequency not "
                   "tracked. Please note that when switching between policies at runtime LRU "
                   "and LFU data will take some time to adjust.")
LRU_ONLY: Final = ("ERR An LFU maxmemory policy is selected, idle time not tracked. Please "
                   "note that when switching between policies at runtime LRU and LFU data will "
                   "take some time to adjust.")
OBJECT_HELP: Final = [
    b"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"ENCODING <key>",
    b"    Return the kind of internal representation used in order to store the value",
    b"    associated with a <key>.",
    b"FREQ <key>",
    b"    Return the access frequency index of the <key>. The returned integer is",
    b"    proportional to the logarithm of the recent access frequency of the key.",
    b"IDLETIME <key>",
    b"    Return the idle time of the <key>, that is the approximated number of",
    b"    seconds elapsed since the last access to the key.",
    b"REFCOUNT <key>",
    b"    Return the number of references of the value associated with the specified",
    b"    <key>.",
    b"HELP",
    b"    Prints this help.",
]


def object_(client: Client, args: list[bytes]) -> Reply:
    """OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT key, and OBJECT HELP. Looking is not an
    access (Redis's LOOKUP_NOTOUCH)."""
    sub = args[1].lower()
    if sub == b"help" and len(args) == 2:
        return p.raw_array([b"+%s\r\n" % line for line in OBJECT_HELP])
    if sub not in (b"encoding", b"freq", b"idletime", b"refcount", b"help"):
        raise CommandError(f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. "
                           f"Try OBJECT HELP.")
    if len(args) != (2 if sub == b"help" else 3):
        raise CommandError(f"ERR wrong number of arguments for 'object|{sub.decode()}' "
                           f"command")
    service, key = client.service, args[2]
    lfu = service.limits.eviction.policy.value.endswith("-lfu")
    if sub == b"freq" and not lfu:
        raise CommandError(LFU_ONLY)
    if sub == b"idletime" and lfu:
        raise CommandError(LRU_ONLY)

    def render(entry: Entry | None) -> bytes:
        if entry is None:
            return client.enc.NIL
        if sub == b"encoding":
            if entry.kind:
                return p.bulk(service.encoding(key))
            return p.bulk(string_encoding(entry.value))
        if sub == b"freq":
            return p.integer(service.frequency(key))
        if sub == b"idletime":
            return p.integer(service.idle_ms(key) // 1000)
        return p.integer(1)
    return later(service.peek(key, client.consistency), render)


def string_encoding(value: bytes) -> bytes:
    """Redis's encoding of a string: ``int`` for a canonical 64-bit integer, ``embstr``
    up to 44 bytes, ``raw`` beyond."""
    if len(value) <= 20 and parse_int64(value) is not None:
        return b"int"
    return b"embstr" if len(value) <= 44 else b"raw"


def _rename(client: Client, args: list[bytes], only_if_absent: bool) -> Reply:
    def render(result: Result) -> bytes:
        if result.outcome is Outcome.NOT_FOUND:
            raise CommandError("ERR no such key")
        if only_if_absent:
            return p.ONE if result.ok and args[1] != args[2] else p.ZERO
        return p.OK
    return later(client.service.rename(args[1], args[2], only_if_absent), render)


def rename(client: Client, args: list[bytes]) -> Reply:
    return _rename(client, args, False)


def renamenx(client: Client, args: list[bytes]) -> Reply:
    return _rename(client, args, True)


def copy(client: Client, args: list[bytes]) -> Reply:
    """COPY source destination [DB 0] [REPLACE] (one database: DB must be 0)."""
    replace_target = False
    i = 3
    while i < len(args):
        option = args[i].upper()
        if option == b"REPLACE":
            replace_target = True
        elif option == b"DB" and i + 1 < len(args):
            if to_int(args[i + 1]) != 0:
                raise CommandError("ERR DB index is out of range")
            i += 1
        else:
            raise CommandError(SYNTAX)
        i += 1
    if args[1] == args[2]:
        raise CommandError("ERR source and destination objects are the same")
    return later(client.service.copy(args[1], args[2], replace_target),
                 lambda result: p.ONE if result.ok else p.ZERO)


COMMANDS: Final = [
    spec("del", -2, "write", del_, 1, -1),
    spec("unlink", -2, "write fast", del_, 1, -1),
    spec("exists", -2, "readonly fast", exists, 1, -1),
    spec("type", 2, "readonly fast", type_, 1, 1),
    spec("expire", -3, "write fast", expire, 1, 1),
    spec("pexpire", -3, "write fast", pexpire, 1, 1),
    spec("expireat", -3, "write fast", expireat, 1, 1),
    spec("pexpireat", -3, "write fast", pexpireat, 1, 1),
    spec("persist", 2, "write fast", persist, 1, 1),
    spec("ttl", 2, "readonly fast", ttl, 1, 1),
    spec("pttl", 2, "readonly fast", pttl, 1, 1),
    spec("scan", -2, "readonly", scan),
    spec("keys", 2, "readonly", keys),
    spec("touch", -2, "readonly fast", touch, 1, -1),
    spec("expiretime", 2, "readonly fast", expiretime, 1, 1),
    spec("pexpiretime", 2, "readonly fast", pexpiretime, 1, 1),
    spec("randomkey", 1, "readonly", randomkey),
    spec("object", -2, "readonly", object_, 2, 2),
    spec("rename", 3, "write", rename, 1, 2),
    spec("renamenx", 3, "write fast", renamenx, 1, 2),
    spec("copy", -3, "write", copy, 1, 2),
]
