"""Raft messages on the wire between nodes: a versioned binary codec (never pickle:
a peer's bytes must not be able to run code here).

    frame   := version u8 | type u8 | flags u8 | term u64 | log_term u64 | index u64
               | commit u64 | reject_hint u64 | chunk_offset u64
               | frm | to | context | data | entry_count u32 | entry*
    entry   := term u64 | index u64 | kind u8 | data
    string  := u32 length | bytes        (frm, to: UTF-8)
    flags   := bit 0 reject, bit 1 last_chunk

Little-endian. Every length is checked against the bytes left before slicing.
"""

from __future__ import annotations

import struct
from typing import Final

from raftkv.core.binary import U32, BinaryReader
from raftkv.replication.raft.messages import EntryKind, LogEntry, Message, MsgType

VERSION: Final = 1
_HEAD: Final = struct.Struct("<BBBQQQQQQ")
_ENTRY: Final = struct.Struct("<QQB")


class MessageCodecError(ValueError):
    """Raised when bytes are not a message of a version this node speaks."""


def _blob(data: bytes) -> bytes:
    return U32.pack(len(data)) + data


def encode_message(m: Message) -> bytes:
    flags = (1 if m.reject else 0) | (2 if m.last_chunk else 0)
    parts = [_HEAD.pack(VERSION, m.type, flags, m.term, m.log_term, m.index, m.commit,
                        m.reject_hint, m.chunk_offset),
             _blob(m.frm.encode()), _blob(m.to.encode()), _blob(m.context), _blob(m.data),
             U32.pack(len(m.entries))]
    for e in m.entries:
        parts.append(_ENTRY.pack(e.term, e.index, e.kind))
        parts.append(_blob(e.data))
    return b"".join(parts)


def decode_message(data: bytes) -> Message:
    r = BinaryReader(data, MessageCodecError)
    version, kind, flags, term, log_term, index, commit, hint, offset = r.fixed(_HEAD)
    if version != VERSION:
        raise MessageCodecError(f"unknown message version {version}")
    try:
        msg_type = MsgType(kind)
        frm, to = r.blob().decode(), r.blob().decode()
        context, payload = r.blob(), r.blob()
        (count,) = r.fixed(U32)
        if count > len(data):  # each entry takes at least one byte: cheap sanity bound
            raise MessageCodecError("entry count larger than the message")
        entries = []
        for _ in range(count):
            e_term, e_index, e_kind = r.fixed(_ENTRY)
            entries.append(LogEntry(e_term, e_index, r.blob(), EntryKind(e_kind)))
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, MessageCodecError):
            raise
        raise MessageCodecError(f"malformed message: {exc}") from None
    if not r.at_end:
        raise MessageCodecError("trailing bytes after the message")
    return Message(msg_type, frm, to, term, log_term, index, tuple(entries), commit,
                   bool(flags & 1), hint, context, payload, offset, bool(flags & 2))
