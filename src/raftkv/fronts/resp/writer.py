"""RESP replies written in C where a reply is many small pieces: bulk strings
(``$<length>\r\n<bytes>\r\n``), arrays of them (``*<count>\r\n`` first) and
integers (``:<n>\r\n``). LRANGE, HGETALL, SMEMBERS, ZRANGE and the pops answer with
bulk strings - an LRANGE of 100 items is 100 of them - and LPUSH, SADD and HSET with
an integer. Requests come in through ``reader.py``; replies go out through this.

This file is the reference, in plain Python. What runs is ``writer.c``, built into an
extension module of the same name, which Python imports instead of this file: here
each piece costs a formatting call, there a copy. The tests hold the two to the same
behaviour (``tests/property/test_writer.py``).
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
        raise TypeError("writer.array takes a tuple or a list")
    out = bytearray(b"*%d\r\n" % len(items))
    for item in items:
        if item is None:
            out += nil
        elif isinstance(item, bytes):
            out += bulk(item)
        else:
            return None
    return bytes(out)


def integer(n: int) -> bytes:
    """An integer reply."""
    if not isinstance(n, int):
        raise TypeError("an integer reply is an int")
    return b":%d\r\n" % n
