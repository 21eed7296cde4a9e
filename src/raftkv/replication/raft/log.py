"""Where a Raft node keeps what it must not forget: hard state, log entries, snapshot.

``RaftLog`` is the interface the driver persists a Ready through; ``save`` returns
only once everything handed to it is durable, so the driver may then send the
Ready's messages (a vote or an acknowledgement never outruns the disk, §5.1).

* ``MemoryRaftLog`` - the in-memory twin, for tests and the simulator.
* ``WalRaftLog`` - on the storage engine's segmented WAL: STATE records for term,
  vote and commit; ENTRY records for entries (payload ``kind u8 | data``); an entry
  whose index is at or below the last one replaces the log from there (a term
  conflict, §5.3). Snapshots are files written crash-safely by ``storage.snapshots``'s
  rules (tmp -> fsync -> rename -> fsync dir), then a SNAP record marks where in the
  record sequence the snapshot replaced the log, so recovery drops exactly the
  entries it dropped at run time (and keeps the ones appended after it); after
  that, covered segments go.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import Protocol

from raftkv.errors import CorruptionError
from raftkv.replication.raft.messages import (
    EntryKind,
    HardState,
    LogEntry,
    Snapshot,
    decode_conf,
    encode_conf,
)
from raftkv.storage import records
from raftkv.storage.fs import FileSystem
from raftkv.storage.wal import SegmentedLog, list_segments

_STATE = struct.Struct("<QQH")  # term, commit, vote length
_SNAP_MARK = struct.Struct("<QQ")  # index, term
_SNAP_HEAD = struct.Struct("<8sQQI")  # magic, index, term, conf length
_SNAP_MAGIC = b"RKVRAFT1"
SNAPSHOT_FILE = "raft.snapshot"


@dataclass
class Stored:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[LogEntry] = field(default_factory=list)  # after the snapshot


class RaftLog(Protocol):
    def load(self) -> Stored:
        """Everything saved so far (what a restarted node boots from)."""

    def save(self, hard_state: HardState | None, entries: list[LogEntry],
             snapshot: Snapshot | None = None) -> None:
        """Make ``snapshot`` (first), ``hard_state`` and ``entries`` durable; entries
        replace the log from ``entries[0].index``. Returns once they are on disk."""

    sync_each_save: bool  # False: ``save`` only writes, and ``sync_now`` makes it durable

    def sync_now(self) -> None:
        """Make everything saved so far durable (``--fsync everysec``'s tick, shutdown)."""


def _apply(stored: Stored, hard_state: HardState | None, entries: list[LogEntry],
           snapshot: Snapshot | None) -> None:
    if snapshot is not None:
        keeps = any(e.index == snapshot.index and e.term == snapshot.term
                    for e in stored.entries)
        stored.entries = [e for e in stored.entries if e.index > snapshot.index] if keeps else []
        stored.snapshot = snapshot
    if hard_state is not None:
        stored.hard_state = hard_state
    if entries:  # stored.entries are contiguous: cut at the first new index, then extend
        first, kept = entries[0].index, stored.entries
        if kept and first <= kept[-1].index:
            del kept[max(0, first - kept[0].index):]
        kept.extend(entries)


class MemoryRaftLog:
    sync_each_save = True

    def __init__(self) -> None:
        self._stored = Stored()

    def sync_now(self) -> None:
        pass

    def load(self) -> Stored:
        s = self._stored
        return Stored(s.hard_state, s.snapshot, list(s.entries))

    def save(self, hard_state: HardState | None, entries: list[LogEntry],
             snapshot: Snapshot | None = None) -> None:
        _apply(self._stored, hard_state, entries, snapshot)


class WalRaftLog:
    """Synchronous: call ``save`` from the driver's I/O thread (it fsyncs)."""

    def __init__(self, fs: FileSystem, directory: str,
                 segment_max_bytes: int = 64 * 1024 * 1024, sync: bool = True) -> None:
        self.fs = fs
        self.directory = directory
        self.sync_each_save = sync  # False under --fsync everysec/no: sync_now() does it
        fs.makedirs(directory)
        self._stored = self._recover()
        self._log = SegmentedLog(fs, directory, segment_max_bytes)
        self._next_first = self._stored.entries[-1].index + 1 if self._stored.entries else 1

    def load(self) -> Stored:
        s = self._stored
        return Stored(s.hard_state, s.snapshot, list(s.entries))

    def save(self, hard_state: HardState | None, entries: list[LogEntry],
             snapshot: Snapshot | None = None) -> None:
        if snapshot is not None:
            self._write_snapshot(snapshot)
        parts = []
        if snapshot is not None:
            parts.append(records.frame(records.SNAP, _SNAP_MARK.pack(snapshot.index,
                                                                     snapshot.term)))
        if hard_state is not None:
            vote = (hard_state.vote or "").encode()
            parts.append(records.frame(records.STATE, _STATE.pack(
                hard_state.term, hard_state.commit, len(vote)) + vote))
        for e in entries:
            parts.append(records.frame_entry(e.index, e.term, bytes([e.kind]) + e.data))
        if parts:
            first = entries[0].index if entries else self._next_first
            if snapshot is not None and not entries:
                first = max(first, snapshot.index + 1)
            self._log.write(b"".join(parts), first)
            if self.sync_each_save:
                self._log.sync()
        _apply(self._stored, hard_state, entries, snapshot)
        if entries:
            self._next_first = entries[-1].index + 1
        if snapshot is not None:
            self._log.remove_covered(snapshot.index)

    def sync_now(self) -> None:
        self._log.sync()

    def _write_snapshot(self, snap: Snapshot) -> None:
        conf = encode_conf(snap.voters, snap.learners)
        body = _SNAP_HEAD.pack(_SNAP_MAGIC, snap.index, snap.term, len(conf)) + conf + snap.data
        data = body + struct.pack("<I", zlib.crc32(body))
        final = os.path.join(self.directory, SNAPSHOT_FILE)
        tmp = final + ".tmp"
        f = self.fs.create(tmp)
        try:
            f.write(data)
            f.sync()
        finally:
            f.close()
        self.fs.rename(tmp, final)
        self.fs.sync_dir(self.directory)

    def _recover(self) -> Stored:
        stored = Stored()
        path = os.path.join(self.directory, SNAPSHOT_FILE)
        snapshot = _parse_snapshot(self.fs.read(path), path) if self.fs.exists(path) else None
        marked = 0  # index of the last SNAP record replayed
        segments = list_segments(self.fs, self.directory)
        for position, name in enumerate(segments):
            seg = os.path.join(self.directory, name)
            data = self.fs.read(seg)
            try:
                for rec in records.read_records(data):
                    if rec.type == records.STATE:
                        term, commit, vote_len = _STATE.unpack_from(rec.payload)
                        vote = rec.payload[_STATE.size: _STATE.size + vote_len].decode() or None
                        stored.hard_state = HardState(term, vote, commit)
                    elif rec.type == records.SNAP:
                        marked, term = _SNAP_MARK.unpack_from(rec.payload)
                        _apply(stored, None, [], Snapshot(marked, term, b""))
                    else:
                        index, term, payload = records.parse_entry(rec.payload)
                        entry = LogEntry(term, index, payload[1:], EntryKind(payload[0]))
                        _apply(stored, None, [entry], None)
            except records.BadRecord as bad:
                last = position == len(segments) - 1
                if not last or records.any_valid_record_after(data, bad.offset) is not None:
                    raise CorruptionError(f"Raft log {seg}: {bad.reason} at offset "
                                          f"{bad.offset}; refusing to start") from None
                self.fs.truncate(seg, bad.offset)  # a torn tail: never acknowledged
        if snapshot is not None:
            if snapshot.index > marked:  # a crash between the file and its SNAP record:
                _apply(stored, None, [], snapshot)  # every entry replayed predates it
            stored.snapshot = snapshot
        return stored


def _parse_snapshot(data: bytes, path: str) -> Snapshot:
    if len(data) < _SNAP_HEAD.size + 4 or zlib.crc32(memoryview(data)[:-4]) != \
            struct.unpack("<I", data[-4:])[0]:
        raise CorruptionError(f"Raft snapshot {path}: checksum mismatch; refusing to start")
    magic, index, term, conf_len = _SNAP_HEAD.unpack_from(data)
    if magic != _SNAP_MAGIC:
        raise CorruptionError(f"Raft snapshot {path}: not a raftkv Raft snapshot")
    start = _SNAP_HEAD.size
    voters, learners = decode_conf(data[start: start + conf_len])
    return Snapshot(index, term, data[start + conf_len: -4], voters, learners)
