"""Bulk strings as RESP writes them: ``$<length>\\r\\n<bytes>\\r\\n``, and arrays of
them (``*<count>\\r\\n`` first). LRANGE, HGETALL, SMEMBERS, ZRANGE and the pops answer
so: the reply of an LRANGE of 100 items is 100 bulk strings.

This file is the reference, in plain Python. What runs is ``bulks.c``, built into an
extension module of the same name, which Python imports instead of this file: here
each string costs a formatting call, there a copy. The tests hold the two to the same
behaviour (``tests/property/test_bulks.py``).
"""

from __future__ import annotations

from collections.abc import Sequence


def bulk(value: bytes) -> bytes:
    """One bulk string (of bytes or a bytearray)."""
    if not isinstance(value, bytes | bytearray):
        raise TypeError("a bulk string is bytes")
    return b"$%d\r\n%s\r\n" % (len(value), value)


def array(items: Sequence[bytes | None], nil: bytes) -> bytes | None:
    """An array of bulk strings (``items``: a tuple or a list), each None written as
    ``nil``; None when an item is neither bytes nor None (the caller encodes it)."""
    if not isinstance(items, tuple | list):
        raise TypeError("bulks.array takes a tuple or a list")
    out = bytearray(b"*%d\r\n" % len(items))
    for item in items:
        if item is None:
            out += nil
        elif isinstance(item, bytes):
            out += b"$%d\r\n%s\r\n" % (len(item), item)
        else:
            return None
    return bytes(out)
