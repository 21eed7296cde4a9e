"""Snapshot files: a state-machine image with the log position and membership it
belongs to, written crash-safely. The one snapshot format of both replicators.

Format (all integers little-endian; DESIGN.md beside this file)::

    magic "RKVSNAP2" | index u64 | term u64 | voters | learners | image | crc32 u32
    voters, learners := count u16 | (length u8 | node id)*
    crc32            := over everything before it

``image`` is the state machine's own encoding (``core/image.py``), opaque here.
Written as ``snap-<index>.tmp`` -> fsync -> rename to ``snap-<index>.snap`` -> fsync
of the directory; only then may log segments the snapshot covers be removed.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import Final

from raftkv.errors import CorruptionError
from raftkv.storage import failpoints
from raftkv.storage.fs import FileSystem

MAGIC: Final = b"RKVSNAP2"
_HEAD: Final = struct.Struct("<8sQQ")
_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
SUFFIX: Final = ".snap"
TMP_SUFFIX: Final = ".tmp"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state machine's image covering every entry up to ``index`` (of ``term``),
    and the membership as of ``index`` (empty on a single node)."""

    index: int
    term: int
    data: bytes  # the image
    voters: tuple[str, ...] = ()
    learners: tuple[str, ...] = ()


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


def encode_members(ids: tuple[str, ...]) -> bytes:
    parts = [_U16.pack(len(ids))]
    for node_id in ids:
        raw = node_id.encode()
        parts += (bytes([len(raw)]), raw)
    return b"".join(parts)


def _decode_members(data: bytes, pos: int) -> tuple[tuple[str, ...], int]:
    (count,) = _U16.unpack_from(data, pos)
    pos += _U16.size
    ids = []
    for _ in range(count):
        length = data[pos]
        ids.append(data[pos + 1 : pos + 1 + length].decode())
        pos += 1 + length
    return tuple(ids), pos


def encode(snapshot: Snapshot) -> bytes:
    """The file's bytes."""
    body = b"".join((_HEAD.pack(MAGIC, snapshot.index, snapshot.term),
                     encode_members(snapshot.voters), encode_members(snapshot.learners),
                     snapshot.data))
    return body + _U32.pack(zlib.crc32(body))


def decode(data: bytes, name: str) -> Snapshot:
    """Parse and verify a snapshot file; CorruptionError names the file on any damage."""
    if len(data) < _HEAD.size + 8 or data[:8] != MAGIC:
        raise CorruptionError(f"snapshot {name}: not a raftkv snapshot file (bad magic or "
                              f"too short)")
    (crc,) = _U32.unpack_from(data, len(data) - 4)
    if zlib.crc32(memoryview(data)[:-4]) != crc:
        raise CorruptionError(f"snapshot {name}: checksum mismatch")
    try:
        _, index, term = _HEAD.unpack_from(data)
        voters, pos = _decode_members(data, _HEAD.size)
        learners, pos = _decode_members(data, pos)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise CorruptionError(f"snapshot {name}: malformed header ({exc})") from exc
    return Snapshot(index, term, data[pos:-4], voters, learners)


def write(fs: FileSystem, directory: str, snapshot: Snapshot) -> int:
    """tmp -> fsync -> rename -> fsync dir. Returns the file's size."""
    data = encode(snapshot)
    final = os.path.join(directory, snapshot_name(snapshot.index))
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
    return len(data)


def prune(fs: FileSystem, directory: str, keep: int) -> int:
    """Keep the ``keep`` newest snapshots; return the index of the oldest kept (the log
    must still reach back to it, so a damaged newest snapshot can fall back to it)."""
    snaps = list_snapshots(fs, directory)
    for _, name in snaps[:-keep]:
        fs.remove(os.path.join(directory, name))
    if len(snaps) > keep:
        fs.sync_dir(directory)
    kept = snaps[-keep:]
    return kept[0][0] if kept else 0


def remove_unfinished(fs: FileSystem, directory: str) -> None:
    """Remove ``*.tmp`` files: snapshots interrupted before their rename."""
    for name in fs.listdir(directory):
        if name.endswith(TMP_SUFFIX):
            fs.remove(os.path.join(directory, name))
