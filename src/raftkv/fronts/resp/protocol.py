"""RESP replies as bytes: the encoders every command handler uses.

Requests are read by ``reader.py`` (its C twin, ``reader.c``, is what runs); bulk
strings, arrays of them and integers are written by ``writer.py`` (``writer.c``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from raftkv.fronts.resp import writer

OK: Final = b"+OK\r\n"
QUEUED: Final = b"+QUEUED\r\n"
PONG: Final = b"+PONG\r\n"
NIL: Final = b"$-1\r\n"
EMPTY_ARRAY: Final = b"*0\r\n"
ZERO: Final = b":0\r\n"
ONE: Final = b":1\r\n"


def simple(text: str) -> bytes:
    return b"+%s\r\n" % text.encode()


def error_reply(message: str) -> bytes:
    """``message`` starts with its code (ERR, NOAUTH, WRONGPASS...), as Redis sends it."""
    return b"-%s\r\n" % message.replace("\r", " ").replace("\n", " ").encode()


_SMALL_INTEGERS: Final = [b":%d\r\n" % n for n in range(1024)]  # (0 and 1 most of all)
# writer.c's functions, bound once (Final: compiled, each is a C static, where
# ``writer.bulk(...)`` looked the module and then the function up on every call)
_write_integer: Final = writer.integer
_write_bulk: Final = writer.bulk
_write_array: Final = writer.array


def integer(n: int) -> bytes:
    return _SMALL_INTEGERS[n] if 0 <= n < 1024 else _write_integer(n)


def bulk(value: bytes | None) -> bytes:
    if value is None:
        return NIL
    return _write_bulk(value)


def array(items: Iterable[bytes | None], nil: bytes = NIL) -> bytes:
    """An array of bulk strings (None items are ``nil``)."""
    listed = items if isinstance(items, list | tuple) else list(items)
    encoded = _write_array(listed, nil)
    if encoded is None:  # (an item that is not bytes: a bytearray, one by one)
        return raw_array([nil if item is None else _write_bulk(item) for item in listed])
    return encoded


def raw_array(encoded: list[bytes]) -> bytes:
    """An array of already-encoded replies (mixed types)."""
    return b"*%d\r\n%s" % (len(encoded), b"".join(encoded))


class Encoder:
    """Replies whose encoding differs between RESP2 and RESP3 (nil, pushes, maps).

    A connection switches to RESP3 with ``HELLO 3``; everything else (simple
    strings, errors, integers, bulk strings, arrays) is the same in both."""

    __slots__ = ("NIL", "NIL_ARRAY", "push_prefix", "version")

    def __init__(self, version: int) -> None:
        self.version = version
        self.NIL = b"_\r\n" if version == 3 else NIL
        self.NIL_ARRAY = b"_\r\n" if version == 3 else b"*-1\r\n"
        self.push_prefix = b">" if version == 3 else b"*"

    def bulk(self, value: bytes | None) -> bytes:
        if value is None:
            return self.NIL
        return _write_bulk(value)

    def array(self, items: Iterable[bytes | None]) -> bytes:
        return array(items, self.NIL)

    def push(self, encoded: list[bytes]) -> bytes:
        """Out-of-band data (pub/sub messages and confirmations)."""
        return b"%s%d\r\n%s" % (self.push_prefix, len(encoded), b"".join(encoded))

    def map(self, pairs: list[tuple[bytes, bytes]]) -> bytes:
        """Pairs of already-encoded replies: a RESP3 map, a flat RESP2 array."""
        if self.version == 3:
            return b"%%%d\r\n%s" % (len(pairs), b"".join(k + v for k, v in pairs))
        return raw_array([part for pair in pairs for part in pair])


RESP2 = Encoder(2)
RESP3 = Encoder(3)


def encode_command(*args: bytes) -> bytes:
    """A request as clients send it (used by tests and the benchmark client)."""
    return array(args)
