"""Length-prefixed frames: byte strings back to back, each after its length as four
little-endian bytes (``u32 length | bytes``, how ``binary.BinaryReader.blob`` reads
them). The log's codec (``commands.py``) writes a typed command's arguments and a
transaction's ops so.

This file is the reference, in plain Python. What runs is ``frames.c``, built into an
extension module of the same name, which Python imports instead of this file: every
typed write is encoded for the log, and here each of its strings costs a call to
pack its length and an append. The tests hold the two to the same behaviour.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

_U32 = struct.Struct("<I")


def join(strings: Sequence[bytes]) -> bytes:
    """The strings (a tuple or list of bytes), each after its length."""
    if not isinstance(strings, tuple | list):
        raise TypeError("frames.join takes a tuple or a list")
    out = bytearray()
    for string in strings:
        if not isinstance(string, bytes):
            raise TypeError("frames are bytes")
        out += _U32.pack(len(string))
        out += string
    return bytes(out)
