"""Reading a typed op's arguments the way Redis reads them, with Redis's error texts.
An op parses every argument before it changes anything."""

from __future__ import annotations

import math
import re
from typing import Final

from raftkv.core.commands import ExpireWhen
from raftkv.core.numbers import parse_int64
from raftkv.core.typed.context import OpError

NOT_INTEGER: Final = b"ERR value is not an integer or out of range"
NOT_FLOAT: Final = b"ERR value is not a valid float"
SYNTAX: Final = b"ERR syntax error"
MUST_BE_POSITIVE: Final = b"ERR value is out of range, must be positive"
NUMKEYS: Final = b"ERR numkeys should be greater than 0"
# what strtod accepts and Redis keeps: no spaces, no NaN (Python's float() would also
# take "1_000" and " 1")
_FLOAT: Final = re.compile(rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?)\Z",
                           re.IGNORECASE)


def integer(raw: bytes, error: bytes = NOT_INTEGER) -> int:
    value = parse_int64(raw)
    if value is None:
        raise OpError(error)
    return value


def positive(raw: bytes, error: bytes = MUST_BE_POSITIVE) -> int:
    """A count that must not be negative (Redis's getPositiveLong...)."""
    value = parse_int64(raw)
    if value is None or value < 0:
        raise OpError(error)
    return value


def at_least_one(raw: bytes, error: bytes) -> int:
    value = parse_int64(raw)
    if value is None or value < 1:
        raise OpError(error)
    return value


def number(raw: bytes, error: bytes = NOT_FLOAT) -> float:
    """A double as Redis reads a score: ``inf`` and exponents yes, NaN no."""
    if raw.isdigit():  # (the common case, without the pattern)
        return float(raw)
    if not _FLOAT.match(raw):
        raise OpError(error)
    value = float(raw)
    if math.isnan(value):
        raise OpError(error)
    return value


def pairs(args: list[bytes], start: int) -> list[tuple[bytes, bytes]]:
    """The (name, value) pairs from ``start`` on, for an even count of arguments (a loop
    over a range: compiled, ``zip`` with ``strict`` is a generic call by keyword)."""
    return [(args[i], args[i + 1]) for i in range(start, len(args) - 1, 2)]


def double_text(value: float) -> bytes:
    """A double as Redis 7.0 writes one in a bulk string (%.17g; inf, -inf)."""
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    return b"%.17g" % value


def count_option(args: list[bytes], start: int, name: bytes, error: bytes) -> int | None:
    """Redis's trailing ``COUNT n`` (n >= 1) of the LMPOP family; None when absent."""
    count = None
    i = start
    while i < len(args):
        if args[i].upper() == name and i + 1 < len(args) and count is None:
            count = at_least_one(args[i + 1], error)
            i += 2
        else:
            raise OpError(SYNTAX)
    return count


def mpop_keys(args: list[bytes]) -> tuple[list[bytes], int]:
    """LMPOP / ZMPOP's ``numkeys key [key ...]``: the keys, and the index after them
    (a count past the arguments is a syntax error there)."""
    count = at_least_one(args[1], NUMKEYS)
    end = 2 + count
    if end > len(args):
        raise OpError(SYNTAX)
    return args[2:end], end


def card_limit(args: list[bytes], after: int) -> int:
    """SINTERCARD / ZINTERCARD's trailing ``LIMIT n`` (0: none)."""
    if after == len(args):
        return 0
    if args[after].upper() != b"LIMIT" or after + 2 != len(args):
        raise OpError(SYNTAX)
    return positive(args[after + 1], b"ERR LIMIT can't be negative")


def first_keys(args: list[bytes]) -> list[bytes]:
    """The keys of a command that starts ``numkeys key [key ...]`` (for key checks)."""
    return numkeys(args, 1)[0]


def numkeys(args: list[bytes], at: int) -> tuple[list[bytes], int]:
    """The keys of a ``numkeys key [key ...]`` list at ``at``, and the index after."""
    count = at_least_one(args[at], NUMKEYS)
    end = at + 1 + count
    if end > len(args):
        raise OpError(b"ERR Number of keys can't be greater than number of args")
    return args[at + 1 : end], end


def scan_options(args: list[bytes], start: int) -> bytes | None:
    """HSCAN / SSCAN / ZSCAN's ``cursor [MATCH pattern] [COUNT count]``: the pattern.
    The cursor is checked; every element is returned in one call (cursor 0)."""
    if parse_int64(args[start - 1]) is None and not args[start - 1].isdigit():
        raise OpError(b"ERR invalid cursor")
    pattern = None
    i = start
    while i < len(args):
        option = args[i].upper()
        if option == b"MATCH" and i + 1 < len(args):
            pattern = args[i + 1]
        elif option == b"COUNT" and i + 1 < len(args):
            if integer(args[i + 1]) < 1:
                raise OpError(SYNTAX)
        else:
            raise OpError(SYNTAX)
        i += 2
    return pattern


# --- the string and key commands' options (the RESP front and scripts share them) ---

MAX_MS: Final = 2**62
_INT64_MAX: Final = 2**63 - 1
EXPIRE_OPTIONS: Final = {b"NX": 1, b"XX": 2, b"GT": 4, b"LT": 8}


def deadline(raw: bytes, unit: bytes, now_ms: int, name: str) -> int:
    """An absolute deadline in ms from SET's EX/PX/EXAT/PXAT (or SETEX's seconds):
    relative times become absolute before anything is logged."""
    amount = integer(raw)
    invalid = b"ERR invalid expire time in '%s' command" % name.encode()
    if amount <= 0:
        raise OpError(invalid)
    ms = amount * 1000 if unit in (b"EX", b"EXAT") else amount
    at = ms if unit in (b"EXAT", b"PXAT") else now_ms + ms
    if ms > MAX_MS or at > MAX_MS:
        raise OpError(invalid)
    return at


def set_options(args: list[bytes], now_ms: int) -> tuple[int, bool, bool, int | None]:
    """SET key value [NX|XX] [GET] [KEEPTTL|EX s|PX ms|EXAT t|PXAT t]: (condition - 0
    none, 1 absent, 2 exists -, keep the TTL, answer the old value, the deadline)."""
    cond, keep_ttl, want_old, expires = 0, False, False, None
    i = 3
    while i < len(args):
        option = args[i].upper()
        has_arg = i + 1 < len(args)
        if option == b"NX" and not cond:
            cond = 1
        elif option == b"XX" and not cond:
            cond = 2
        elif option == b"GET":
            want_old = True
        elif option == b"KEEPTTL" and expires is None:
            keep_ttl = True
        elif option in (b"EX", b"PX", b"EXAT", b"PXAT") and has_arg and expires is None \
                and not keep_ttl:
            expires = deadline(args[i + 1], option, now_ms, "set")
            i += 1
        else:
            raise OpError(SYNTAX)
        i += 1
    return cond, keep_ttl, want_old, expires


def expire_options(args: list[bytes], unit: bytes, name: str, now_ms: int
                   ) -> tuple[int, ExpireWhen]:
    """EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT key time [NX|XX|GT|LT], as Redis 7's
    expireGenericCommand: options first, then the time, an error only where it
    overflows 64 bits: the absolute deadline, and when it applies."""
    flags = 0
    for option in args[3:]:
        bit = EXPIRE_OPTIONS.get(option.upper())
        if bit is None:
            raise OpError(b"ERR Unsupported option %s" % option)
        flags |= bit
    if flags & 1 and flags & 14:
        raise OpError(b"ERR NX and XX, GT or LT options at the same time are not compatible")
    if flags & 4 and flags & 8:
        raise OpError(b"ERR GT and LT options at the same time are not compatible")
    amount = integer(args[2])
    invalid = b"ERR invalid expire time in '%s' command" % name.encode()
    if unit in (b"EX", b"EXAT"):
        if abs(amount) > _INT64_MAX // 1000:
            raise OpError(invalid)
        amount *= 1000
    base = 0 if unit in (b"EXAT", b"PXAT") else now_ms
    if amount > _INT64_MAX - base:
        raise OpError(invalid)
    when = (ExpireWhen.NX if flags & 1 else ExpireWhen.GT if flags & 4
            else ExpireWhen.XX_LT if flags & 10 == 10 else ExpireWhen.LT if flags & 8
            else ExpireWhen.XX if flags & 2 else ExpireWhen.ALWAYS)
    return amount + base, when
