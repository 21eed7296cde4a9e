"""The packed form of a small hash, list or sorted set: each string after its length in
one byte, back to back in one bytes object (a hash's field and value alternate, a
sorted set's member and score). Redis keeps a small container in a listpack for the
same reason: a Python dict or list and a bytes object per element cost several times
the data (``containers.py``).

This file is the reference, in plain Python. What runs is ``packed.c``, built into
an extension module of the same name, which Python imports instead of this file:
packing and unpacking happen on every change to a small container, and here each
byte costs an interpreted step. The tests hold the two to the same behaviour.
"""

from __future__ import annotations

from collections.abc import Collection


def pack(strings: Collection[bytes], max_count: int, max_len: int) -> bytes | None:
    """The strings (a list, tuple or deque) packed; None when there are more than
    ``max_count`` of them or one is longer than ``max_len`` (at most 255)."""
    _check_limit(max_len)
    if len(strings) > max_count:
        return None
    out = bytearray()
    for string in strings:
        if not isinstance(string, bytes):
            raise TypeError("packed strings must be bytes")
        if len(string) > max_len:
            return None
        out.append(len(string))
        out += string
    return bytes(out)


def pack_pairs(fields: dict[bytes, bytes], max_count: int, max_len: int) -> bytes | None:
    """A dict's fields and values packed in its order; None past ``max_count`` pairs or
    with a field or value longer than ``max_len``."""
    _check_limit(max_len)
    if not isinstance(fields, dict):
        raise TypeError("pack_pairs takes a dict")
    if len(fields) > max_count:
        return None
    return pack([s for pair in fields.items() for s in pair], 2 * max_count, max_len)


def unpack(blob: bytes) -> list[bytes]:
    if not isinstance(blob, bytes):
        raise TypeError("unpack takes bytes")
    strings: list[bytes] = []
    at, end = 0, len(blob)
    while at < end:
        length = blob[at]
        if at + 1 + length > end:
            raise ValueError("a packed string runs past the end")
        strings.append(blob[at + 1:at + 1 + length])
        at += 1 + length
    return strings


def count(blob: bytes) -> int:
    """How many strings ``blob`` packs (what ``unpack`` would give, without making them)."""
    return len(unpack(blob))


def unpack_pairs(blob: bytes) -> dict[bytes, bytes]:
    strings = _unpack_pairs(blob)
    return dict(zip(strings[::2], strings[1::2], strict=True))


def find(blob: bytes, field: bytes) -> bytes | None:
    """The value after ``field`` in packed pairs, None without it."""
    if not isinstance(blob, bytes) or not isinstance(field, bytes):
        raise TypeError("find takes bytes")
    strings = _unpack_pairs(blob)
    for i in range(0, len(strings), 2):
        if strings[i] == field:
            return strings[i + 1]
    return None


def push(blob: bytes, item: bytes, left: bool) -> bytes:
    """``blob`` (packed strings) with ``item`` added at the head or the tail."""
    if not isinstance(blob, bytes):
        raise TypeError("push takes bytes")
    _check_short(item)
    strings = unpack(blob)
    if left:
        strings.insert(0, item)
    else:
        strings.append(item)
    return _pack_all(strings)


def pop(blob: bytes, left: bool) -> tuple[bytes, bytes]:
    """(the string at the head or the tail, ``blob`` without it); IndexError if empty."""
    strings = unpack(blob)
    if not strings:
        raise IndexError("pop from nothing packed")
    item = strings.pop(0 if left else -1)
    return item, _pack_all(strings)


def put_pair(blob: bytes, field: bytes, value: bytes) -> tuple[bytes, bytes | None]:
    """(packed pairs with ``field`` set to ``value``, in its place or at the end; the
    field's old value, None if it was new)."""
    return _edit_pair(blob, field, value)


def drop_pair(blob: bytes, field: bytes) -> tuple[bytes, bytes | None]:
    """(packed pairs without ``field``; its old value, None if it was absent)."""
    return _edit_pair(blob, field, None)


def _edit_pair(blob: bytes, field: bytes, value: bytes | None
               ) -> tuple[bytes, bytes | None]:
    if not isinstance(blob, bytes):
        raise TypeError("packed pairs are bytes")
    _check_short(field)
    if value is not None:
        _check_short(value)
    fields = unpack_pairs(blob)
    old = fields.get(field)
    if value is None:
        if old is None:
            return blob, None
        del fields[field]
    else:
        fields[field] = value
    return _pack_all([s for pair in fields.items() for s in pair]), old


def _unpack_pairs(blob: bytes) -> list[bytes]:
    """The strings of packed pairs, checked to be an even number (check_pairs in C)."""
    strings = unpack(blob)
    if len(strings) % 2:
        raise ValueError("packed pairs hold an odd number of strings")
    return strings


def _pack_all(strings: list[bytes]) -> bytes:
    packed = pack(strings, len(strings), 255)
    assert packed is not None
    return packed


def _check_short(string: bytes) -> None:
    if not isinstance(string, bytes):
        raise TypeError("packed strings must be bytes")
    if len(string) > 255:
        raise ValueError("a packed string is at most 255 bytes")


def _check_limit(max_len: int) -> None:
    if not 0 <= max_len <= 255:
        raise ValueError("max_len must be within 0..255: a length takes one byte")
