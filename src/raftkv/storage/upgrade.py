"""Format 1 data directories, read only to convert them to format 2 (`raftkv upgrade`).

Format 1 had two storage engines (DESIGN.md, "Format 1"):

* a single node: ``wal/`` segments whose ENTRY payload is ``index u64 | term u64 |
  command`` (no kind), and ``snapshots/snap-<i>.snap`` holding the bare image;
* a cluster member: ``raft/`` segments in today's record grammar and one
  ``raft/raft.snapshot`` (``"RKVRAFT1" | index u64 | term u64 | conf_len u32 | conf |
  image | crc32``, conf as ``v=a,b;l=c``).

Each is read with format 1's own recovery rules (a torn tail is left out, as format 1
cut it; damage elsewhere refuses), then written as format 2 into ``DIR/format-2.tmp``:
the snapshot, the hard state and the entries after the snapshot. Then the old files
move to ``DIR/format-1/``, the new ones into place, and ``FORMAT`` is written last.
Every step is followed by the fsyncs it needs; run again after a crash, the upgrade
picks up where it stopped (``FORMAT`` absent and ``format-1/`` present means
"interrupted", and a node refuses to start on such a directory).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from raftkv.errors import CorruptionError
from raftkv.storage import log_store, records, snapshots
from raftkv.storage.fs import FileSystem, write_atomically
from raftkv.storage.log_store import EntryKind, HardState, LogEntry, Stored
from raftkv.storage.snapshots import Snapshot
from raftkv.storage.wal import list_segments

OLD_DIR: Final = log_store.INTERRUPTED_UPGRADE  # where the old files go
STAGING_DIR: Final = "format-2.tmp"  # where the new ones are written first
STAGED: Final = "STAGED"  # written into STAGING_DIR once everything in it is durable
_RAFT_SNAPSHOT: Final = "raft.snapshot"
_RAFT_HEAD: Final = struct.Struct("<8sQQI")
_RAFT_MAGIC: Final = b"RKVRAFT1"
_OLD_ENTRY: Final = struct.Struct("<QQ")


@dataclass(frozen=True, slots=True)
class Upgraded:
    kind: str  # "single node" or "cluster member"
    snapshot_index: int
    entries: int
    kept_in: str


def upgrade(fs: FileSystem, data_dir: str,
            progress: Callable[[str], None] = lambda step: None) -> Upgraded:
    """Convert ``data_dir`` from format 1 to format 2 (see the module doc)."""
    if fs.exists(os.path.join(data_dir, log_store.FORMAT_FILE)):
        raise CorruptionError(f"{data_dir} is already in format 2; nothing to upgrade")
    old = os.path.join(data_dir, OLD_DIR)
    staging = os.path.join(data_dir, STAGING_DIR)

    def where(name: str) -> str:
        """Format 1's ``name``: moved into ``old`` already, or still in place."""
        moved = os.path.join(old, name)
        return moved if fs.exists(moved) else os.path.join(data_dir, name)

    if fs.exists(where("raft")):
        kind = "cluster member"
        stored = read_cluster_member(fs, where("raft"))
    elif fs.exists(where("wal")):
        kind = "single node"
        stored = read_single_node(fs, where("wal"), where("snapshots"))
    else:
        raise CorruptionError(f"{data_dir} holds no format 1 data (no wal/ or raft/)")
    progress(f"read the {kind}'s format 1 log")
    if not fs.exists(os.path.join(staging, STAGED)):
        progress("writing format 2 beside it")
        _stage(fs, staging, stored)
    progress(f"moving the old files to {old}")
    fs.makedirs(old)
    for name in ("wal", "raft", "snapshots"):
        here, there = os.path.join(data_dir, name), os.path.join(old, name)
        if fs.exists(here) and not fs.exists(there) and (
                name != "snapshots" or fs.exists(os.path.join(staging, "snapshots"))):
            fs.rename(here, there)
    fs.sync_dir(old)
    for name in (log_store.LOG_DIR, log_store.SNAPSHOT_DIR):
        if fs.exists(os.path.join(staging, name)):
            fs.rename(os.path.join(staging, name), os.path.join(data_dir, name))
    fs.sync_dir(data_dir)
    write_atomically(fs, data_dir, log_store.FORMAT_FILE, log_store.FORMAT)
    fs.remove(os.path.join(staging, STAGED))
    fs.remove_dir(staging)
    fs.sync_dir(data_dir)
    progress("done")
    snapshot = stored.snapshot
    return Upgraded(kind, snapshot.index if snapshot is not None else 0, len(stored.entries),
                    old)


def _stage(fs: FileSystem, staging: str, stored: Stored) -> None:
    log_dir = os.path.join(staging, log_store.LOG_DIR)
    snapshot_dir = os.path.join(staging, log_store.SNAPSHOT_DIR)
    for directory in (staging, log_dir, snapshot_dir):
        fs.makedirs(directory)
    if stored.snapshot is not None:
        snapshots.write(fs, snapshot_dir, stored.snapshot)
    parts = []
    hs = stored.hard_state
    if hs != HardState():
        parts.append(records.frame_state(hs.term, hs.commit, hs.vote))
    parts += [log_store.frame(e) for e in stored.entries]
    first = stored.entries[0].index if stored.entries else (
        stored.snapshot.index + 1 if stored.snapshot is not None else 1)
    segment = os.path.join(log_dir, f"{first:020d}.wal")
    f = fs.create(segment)
    try:
        f.write(b"".join(parts))
        f.sync()
    finally:
        f.close()
    fs.sync_dir(log_dir)
    fs.sync_dir(staging)
    write_atomically(fs, staging, STAGED, b"")


def _records(fs: FileSystem, directory: str) -> list[tuple[str, records.Record]]:
    """Every valid record of format 1's segments in order; a torn tail is left out
    (format 1 cut it at start-up), damage elsewhere refuses."""
    out = []
    segments = list_segments(fs, directory)
    for position, name in enumerate(segments):
        path = os.path.join(directory, name)
        data = fs.read(path)
        try:
            out += [(path, record) for record in records.read_records(data)]
        except records.BadRecord as bad:
            if position < len(segments) - 1 or \
                    records.any_valid_record_after(data, bad.offset) is not None:
                raise CorruptionError(f"format 1 segment {path}: {bad.reason} at offset "
                                      f"{bad.offset}; cannot upgrade a damaged log") from None
            out += [(path, r) for r in records.read_records(data[:bad.offset])]
    return out


def read_single_node(fs: FileSystem, wal_dir: str, snapshot_dir: str) -> Stored:
    """A format 1 single node: the newest valid snapshot, then its entries after it."""
    snapshot: Snapshot | None = None
    if fs.exists(snapshot_dir):
        for index, name in reversed(snapshots.list_snapshots(fs, snapshot_dir)):
            data = fs.read(os.path.join(snapshot_dir, name))
            if _image_index(data) == index:  # format 1's snapshot file is the bare image
                snapshot = Snapshot(index, 0, data)
                break
    last = snapshot.index if snapshot is not None else 0
    stored = Stored(snapshot=snapshot)
    for path, record in _records(fs, wal_dir):
        if record.type != records.ENTRY:
            continue
        index, term = _OLD_ENTRY.unpack_from(record.payload)
        if index <= last:
            continue
        if index != last + 1:
            raise CorruptionError(f"format 1 segment {path}: entry {index} follows {last}; "
                                  f"entries are missing")
        stored.entries.append(LogEntry(term, index, record.payload[_OLD_ENTRY.size:],
                                       EntryKind.NORMAL))
        last = index
    return stored


def read_cluster_member(fs: FileSystem, raft_dir: str) -> Stored:
    """A format 1 cluster member's Raft log, by format 1's replay rule."""
    snapshot = None
    path = os.path.join(raft_dir, _RAFT_SNAPSHOT)
    if fs.exists(path):
        snapshot = _raft_snapshot(fs.read(path), path)
    stored = Stored()
    marked = 0
    for _, record in _records(fs, raft_dir):
        if record.type == records.STATE:
            term, commit, vote = records.parse_state(record.payload)
            stored.hard_state = HardState(term, vote, commit)
        elif record.type == records.SNAP:
            marked, term = records.SNAP_MARK.unpack_from(record.payload)
            stored.save(None, [], Snapshot(marked, term, b""))
        else:
            index, term, kind, data = records.parse_entry(record.payload)
            stored.save(None, [LogEntry(term, index, data, EntryKind(kind))])
    if snapshot is not None:
        if snapshot.index > marked:
            stored.save(None, [], snapshot)
        stored.snapshot = snapshot
        stored.entries = [e for e in stored.entries if e.index > snapshot.index]
    return stored


def _raft_snapshot(data: bytes, path: str) -> Snapshot:
    if len(data) < _RAFT_HEAD.size + 4 or \
            zlib.crc32(memoryview(data)[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise CorruptionError(f"format 1 Raft snapshot {path}: checksum mismatch")
    magic, index, term, conf_len = _RAFT_HEAD.unpack_from(data)
    if magic != _RAFT_MAGIC:
        raise CorruptionError(f"format 1 Raft snapshot {path}: not a raftkv Raft snapshot")
    start = _RAFT_HEAD.size
    conf = data[start: start + conf_len].decode()
    voters, _, learners = conf.partition(";")
    return Snapshot(index, term, data[start + conf_len: -4],
                    tuple(x for x in voters[2:].split(",") if x),
                    tuple(x for x in learners[2:].split(",") if x))


def _image_index(data: bytes) -> int | None:
    """The index of a format 1 image (magic, index at 8, crc32 last), if it is whole."""
    if len(data) < 16 + 4 or data[:8] != b"RKVSNAP1" or \
            zlib.crc32(memoryview(data)[:-4]) != struct.unpack("<I", data[-4:])[0]:
        return None
    index: int = struct.unpack_from("<Q", data, 8)[0]
    return index
