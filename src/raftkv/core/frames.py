"""Length-prefixed frames: byte strings back to back, each after its length as four
little-endian bytes (``u32 length | bytes``, how ``binary.BinaryReader.blob`` reads
them). The log's codec (``commands.py``) writes a typed command (``record``) and a
transaction's ops (``join``) so.

This file is the reference, in plain Python. What runs is ``frames.c``, built into an
extension module of the same name, which Python imports instead of this file: every
typed write is encoded for the log, and here each of its strings costs a call to
pack its length and an append. The tests hold the two to the same behaviour.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

_U32 = struct.Struct("<I")
_IQ = struct.Struct("<Iq")


def record(head: bytes, rid: bytes, stamp: int, strings: Sequence[bytes]) -> bytes:
    """A log record of frames: ``head`` as it is, ``rid`` as a frame, the strings'
    count (u32) and ``stamp`` (i64), then the strings as frames (a typed write: its
    codec head, request id, clock reading and command line)."""
    if not isinstance(head, bytes) or not isinstance(rid, bytes) or not isinstance(stamp, int):
        raise TypeError("frames.record takes head (bytes), rid (bytes), stamp (int), strings")
    if not -(2**63) <= stamp < 2**63:
        raise OverflowError("a record's stamp is a signed 64-bit integer")
    body = join(strings)
    return head + _U32.pack(len(rid)) + rid + _IQ.pack(len(strings), stamp) + body


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
