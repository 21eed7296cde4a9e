"""Log record framing (the format is specified in DESIGN.md beside this file).

    record  := crc32 u32 | length u32 | type u8 | payload[length]
    crc32   := zlib.crc32 over length | type | payload
    ENTRY   payload := index u64 | term u64 | kind u8 | data   (kind: EntryKind)
    STATE   payload := term u64 | commit u64 | vote_len u16 | vote    (hard state)
    SNAP    payload := index u64 | term u64    (a snapshot replaced the log up to here)

All integers little-endian. ``length`` is checked against ``MAX_RECORD_BYTES`` and
the bytes left in the file before anything is allocated for the payload.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

HEADER: Final = struct.Struct("<IIB")
HEADER_BYTES: Final = HEADER.size
_LEN_TYPE: Final = struct.Struct("<IB")
_ENTRY: Final = struct.Struct("<QQ")
MAX_RECORD_BYTES: Final = 64 * 1024 * 1024

ENTRY: Final = 1
STATE: Final = 2
SNAP: Final = 3
RECORD_TYPES: Final = frozenset({ENTRY, STATE, SNAP})


@dataclass(frozen=True, slots=True)
class Record:
    type: int
    payload: bytes
    offset: int  # where the record starts in its segment
    end: int  # offset just past it


def frame(record_type: int, payload: bytes) -> bytes:
    head = _LEN_TYPE.pack(len(payload), record_type)
    return struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + head + payload


_ENTRY_HEAD: Final = struct.Struct("<IBQQB")  # length, type, index, term, kind
_ENTRY_BYTES: Final = _ENTRY.size + 1
STATE_HEAD: Final = struct.Struct("<QQH")  # term, commit, vote length
SNAP_MARK: Final = struct.Struct("<QQ")  # index, term
_pack_u32: Final = struct.Struct("<I").pack  # (compiled: C statics, no lookups per call)
_crc32: Final = zlib.crc32


def frame_entry(index: int, term: int, kind: int, data: bytes) -> bytes:
    head = _ENTRY_HEAD.pack(_ENTRY_BYTES + len(data), ENTRY, index, term, kind)
    return _pack_u32(_crc32(data, _crc32(head))) + head + data


def parse_entry(payload: bytes) -> tuple[int, int, int, bytes]:
    """index, term, kind, data of an ENTRY payload."""
    index, term = _ENTRY.unpack_from(payload)
    return index, term, payload[_ENTRY.size], payload[_ENTRY_BYTES:]


def frame_state(term: int, commit: int, vote: str | None) -> bytes:
    voted = (vote or "").encode()
    return frame(STATE, STATE_HEAD.pack(term, commit, len(voted)) + voted)


def parse_state(payload: bytes) -> tuple[int, int, str | None]:
    """term, commit, vote of a STATE payload."""
    term, commit, vote_len = STATE_HEAD.unpack_from(payload)
    vote = payload[STATE_HEAD.size : STATE_HEAD.size + vote_len].decode()
    return term, commit, vote or None


def frame_snap_mark(index: int, term: int) -> bytes:
    return frame(SNAP, SNAP_MARK.pack(index, term))


class BadRecord(Exception):
    """Raised by :func:`read_records` at the first record that fails its checks."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"bad record at offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason


_MIN_PAYLOAD: Final = {ENTRY: _ENTRY_BYTES, STATE: STATE_HEAD.size, SNAP: SNAP_MARK.size}


def check_at(data: bytes, offset: int) -> Record | str:
    """The record starting at ``offset``, or a reason it is not a valid one."""
    if offset + HEADER_BYTES > len(data):
        return "truncated header"
    crc, length, record_type = HEADER.unpack_from(data, offset)
    if record_type not in RECORD_TYPES:
        return f"unknown record type {record_type}"
    if length > MAX_RECORD_BYTES:
        return f"length {length} over the maximum"
    if length < _MIN_PAYLOAD[record_type]:
        return f"payload of {length} bytes too short for its type"
    end = offset + HEADER_BYTES + length
    if end > len(data):
        return "truncated payload"
    body = memoryview(data)[offset + 4 : end]
    if zlib.crc32(body) != crc:
        return "checksum mismatch"
    return Record(record_type, bytes(body[5:]), offset, end)


def read_records(data: bytes) -> Iterator[Record]:
    """Every valid record from the start of a segment; raises BadRecord at the first bad one."""
    offset = 0
    while offset < len(data):
        found = check_at(data, offset)
        if isinstance(found, str):
            raise BadRecord(offset, found)
        yield found
        offset = found.end


def any_valid_record_after(data: bytes, offset: int) -> int | None:
    """The offset of a valid record starting after ``offset``, if any.

    Tells a torn tail (nothing valid follows the damage) from corruption in the
    middle of a segment (valid records follow it)."""
    for candidate in range(offset + 1, len(data) - HEADER_BYTES + 1):
        if isinstance(check_at(data, candidate), Record):
            return candidate
    return None
