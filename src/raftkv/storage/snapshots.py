"""Snapshot files: a point-in-time image of the state machine, written crash-safely.

Format (all integers little-endian)::

    magic "RKVSNAP1" | index u64 | term u64 | entries u64 | requests u32
    lengths   u32 * (2 * entries)            key length, packed-entry length, ...
    blob      key | packed entry | ...       in key order
    requests  (u32 id length | id | u32 result length | result) * requests
    crc32 u32                                over everything before it

Written as ``snap-<index>.tmp`` -> fsync -> rename to ``snap-<index>.snap`` -> fsync
of the directory; only then may WAL segments the snapshot covers be removed.
Keys are stored in order so that loading rebuilds the ordered index in O(n).
"""

from __future__ import annotations

import os
import struct
import zlib
from array import array
from dataclasses import dataclass
from itertools import chain
from typing import Final

from raftkv.core.commands import Entry, Outcome, Result
from raftkv.core.keyspace import pack, unpack
from raftkv.core.state_machine import Snapshot
from raftkv.errors import CorruptionError
from raftkv.storage import failpoints
from raftkv.storage.fs import FileSystem

MAGIC: Final = b"RKVSNAP1"
_HEAD: Final = struct.Struct("<8sQQQI")
_U32: Final = struct.Struct("<I")
_RESULT: Final = struct.Struct("<BQIBB")
SUFFIX: Final = ".snap"
TMP_SUFFIX: Final = ".tmp"


def snapshot_name(index: int) -> str:
    return f"snap-{index:020d}{SUFFIX}"


def list_snapshots(fs: FileSystem, directory: str) -> list[tuple[int, str]]:
    """(index, file name) of every snapshot file, oldest first."""
    out = []
    for name in fs.listdir(directory):
        stem = name[5 : -len(SUFFIX)]
        if name.startswith("snap-") and name.endswith(SUFFIX) and stem.isdigit():
            out.append((int(stem), name))
    return sorted(out)


def _encode_entry(entry: Entry | None) -> bytes:
    if entry is None:
        return b""
    packed = pack(entry.value, entry.mod_revision, entry.create_revision, entry.expires_at_ms,
                  entry.version)
    return _U32.pack(len(entry.key)) + entry.key + _U32.pack(len(packed)) + packed


def _decode_entry(data: bytes, pos: int) -> tuple[Entry, int]:
    (klen,) = _U32.unpack_from(data, pos)
    key = data[pos + 4 : pos + 4 + klen]
    pos += 4 + klen
    (plen,) = _U32.unpack_from(data, pos)
    packed = data[pos + 4 : pos + 4 + plen]
    return unpack(key, packed), pos + 4 + plen


def encode_result(result: Result) -> bytes:
    return (_RESULT.pack(result.outcome, result.revision, result.affected,
                         result.entry is not None, result.previous is not None)
            + _encode_entry(result.entry) + _encode_entry(result.previous))


def decode_result(data: bytes) -> Result:
    outcome, revision, affected, has_entry, has_previous = _RESULT.unpack_from(data)
    pos = _RESULT.size
    entry = previous = None
    if has_entry:
        entry, pos = _decode_entry(data, pos)
    if has_previous:
        previous, pos = _decode_entry(data, pos)
    return Result(Outcome(outcome), revision, entry, previous, affected)


def serialize(snapshot: Snapshot, term: int = 0) -> bytes:
    """The whole file's bytes. Runs off the event loop: it sorts and copies."""
    items = sorted(snapshot.entries.items())
    lengths = array("I", [len(part) for part in chain.from_iterable(items)])
    requests = b"".join(
        _U32.pack(len(rid)) + rid + _U32.pack(len(enc := encode_result(res))) + enc
        for rid, res in snapshot.requests.items()
    )
    body = b"".join([
        _HEAD.pack(MAGIC, snapshot.index, term, len(items), len(snapshot.requests)),
        lengths.tobytes(),
        b"".join(chain.from_iterable(items)),
        requests,
    ])
    return body + _U32.pack(zlib.crc32(body))


@dataclass(frozen=True, slots=True)
class LoadedSnapshot:
    index: int
    term: int
    items: list[tuple[bytes, bytes]]  # in key order
    requests: dict[bytes, Result]


def parse(data: bytes, name: str) -> LoadedSnapshot:
    """Parse and verify a snapshot file; CorruptionError names the file on any damage."""
    if len(data) < _HEAD.size + 4 or data[:8] != MAGIC:
        raise CorruptionError(f"snapshot {name}: not a raftkv snapshot (bad magic or too short)")
    (crc,) = _U32.unpack_from(data, len(data) - 4)
    if zlib.crc32(memoryview(data)[:-4]) != crc:
        raise CorruptionError(f"snapshot {name}: checksum mismatch")
    try:
        _, index, term, count, nreq = _HEAD.unpack_from(data)
        pos = _HEAD.size
        lengths = array("I")
        lengths.frombytes(data[pos : pos + 8 * count])
        pos += 8 * count
        items: list[tuple[bytes, bytes]] = []
        append = items.append
        it = iter(lengths)
        for klen, plen in zip(it, it, strict=True):
            kend = pos + klen
            pend = kend + plen
            append((data[pos:kend], data[kend:pend]))
            pos = pend
        requests: dict[bytes, Result] = {}
        for _ in range(nreq):
            (rlen,) = _U32.unpack_from(data, pos)
            rid = data[pos + 4 : pos + 4 + rlen]
            pos += 4 + rlen
            (elen,) = _U32.unpack_from(data, pos)
            requests[rid] = decode_result(data[pos + 4 : pos + 4 + elen])
            pos += 4 + elen
    except (struct.error, ValueError) as exc:
        raise CorruptionError(f"snapshot {name}: malformed body ({exc})") from exc
    if pos != len(data) - 4:
        raise CorruptionError(f"snapshot {name}: malformed body (length mismatch)")
    return LoadedSnapshot(index, term, items, requests)


def write(fs: FileSystem, directory: str, data: bytes, index: int) -> str:
    """tmp -> fsync -> rename -> fsync dir. Returns the final path."""
    final = os.path.join(directory, snapshot_name(index))
    tmp = final[: -len(SUFFIX)] + TMP_SUFFIX
    f = fs.create(tmp)
    try:
        f.write(data)
        failpoints.hit("snapshot.before_fsync")
        f.sync()
    finally:
        f.close()
    failpoints.hit("snapshot.before_rename")
    fs.rename(tmp, final)
    failpoints.hit("snapshot.before_dir_fsync")
    if not failpoints.enabled("skip_dir_fsync"):
        fs.sync_dir(directory)
    failpoints.hit("snapshot.after_dir_fsync")
    return final


def prune(fs: FileSystem, directory: str, keep: int) -> int:
    """Keep the ``keep`` newest snapshots; return the index of the oldest kept (the WAL
    must still reach back to it, so a damaged newest snapshot can fall back to it)."""
    snaps = list_snapshots(fs, directory)
    for _, name in snaps[:-keep]:
        fs.remove(os.path.join(directory, name))
    if len(snaps) > keep:
        fs.sync_dir(directory)
    kept = snaps[-keep:]
    return kept[0][0] if kept else 0
