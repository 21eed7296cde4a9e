"""Order keys: a sorted set's (score, member) as bytes that sort as Redis orders the
pairs - by score, then by member byte by byte. The score's eight bytes come first,
its bits made to sort as an unsigned number (a negative's flipped, a positive's top
bit set; -0.0 taken as 0.0), then the member. A sorted list of these compares bytes
alone, where (score, member) tuples had each comparison follow two pointers: a sorted
set of 100k members spent more time waiting on memory than comparing
(``containers.ZSet``).

This file is the reference, in plain Python. What runs is ``order.c``, built into an
extension module of the same name, which Python imports instead of this file: ZADD
makes one or two keys, and here each costs two calls to ``struct``. The tests hold the
two to the same behaviour (``tests/property/test_order.py``).
"""

from __future__ import annotations

import struct
from typing import Final

SCORE_BYTES: Final = 8  # a key's score, before its member
_F64_BE = struct.Struct(">d")
_U64 = struct.Struct(">Q")
_MASK64 = (1 << 64) - 1
_SIGN_BIT = 1 << 63


def key(score: float, member: bytes) -> bytes:
    """The order key of (``score``, ``member``)."""
    if not isinstance(member, bytes):
        raise TypeError("a member is bytes")
    bits: int = _U64.unpack(_F64_BE.pack(score + 0.0))[0]  # (-0.0 + 0.0 is 0.0)
    return _U64.pack(bits ^ _MASK64 if bits >> 63 else bits | _SIGN_BIT) + member
