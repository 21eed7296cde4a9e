"""The one log store of a node: log entries, hard state and snapshots in one data
directory, for both replicators (DESIGN.md beside this file is its grammar).

In hashicorp raft's terms it is the LogStore (ENTRY records), the StableStore (STATE
records) and the SnapshotStore (snapshot files, and SNAP records that say where in
the record sequence a snapshot replaced the log) of one node. ``LocalReplicator``
writes a log of one through it (group commit in ``wal.py``); the Raft node saves each
Ready through it (``replication/raft/log.py``).

Opening a store recovers it, with one rule for a torn tail and one for corruption
(``_recover``). What it recovered is data - the hard state, the newest valid snapshot
and the entries after it - never a state machine: replaying entries into one is the
replicator's business. All methods are synchronous file work: call them from one
thread at a time (the writer's I/O thread), except ``write_snapshot``, which touches
only the snapshot directory.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Final

from raftkv.errors import CorruptionError
from raftkv.storage import records, snapshots
from raftkv.storage.fs import FileSystem
from raftkv.storage.snapshots import Snapshot
from raftkv.storage.wal import DEFAULT_SEGMENT_MAX_BYTES, SegmentedLog, list_segments

LOG_DIR: Final = "log"
SNAPSHOT_DIR: Final = "snapshots"
FORMAT_FILE: Final = "FORMAT"
FORMAT: Final = b"raftkv data 2\n"
SNAPSHOTS_KEPT: Final = 2
LEGACY_DIRS: Final = ("wal", "raft")  # what format 1 kept its log in
INTERRUPTED_UPGRADE: Final = "format-1"  # the old files, moved before FORMAT is written


class EntryKind(enum.IntEnum):
    NORMAL = 0  # a client command
    NOOP = 1  # appended by a new Raft leader to commit entries of earlier terms (§8)
    CONF = 2  # a membership change: data is the new configuration


@dataclass(frozen=True, slots=True)
class LogEntry:
    term: int
    index: int
    data: bytes = b""
    kind: EntryKind = EntryKind.NORMAL


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before any message that depends on it is sent (Raft §5.1)."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass
class Stored:
    """What a store holds: the hard state, the newest valid snapshot, and the entries
    after it (contiguous, in order)."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[LogEntry] = field(default_factory=list)

    def copy(self) -> Stored:
        return Stored(self.hard_state, self.snapshot, list(self.entries))

    def save(self, hard_state: HardState | None, entries: list[LogEntry],
             snapshot: Snapshot | None = None) -> None:
        """What saving these does to the log (the rule recovery replays, and the
        in-memory twin's whole behaviour): a snapshot replaces the log up to its index
        (keeping what follows only if the log has its entry); entries replace the log
        from their first index (a Raft term conflict, §5.3)."""
        if snapshot is not None:
            keeps = any(e.index == snapshot.index and e.term == snapshot.term
                        for e in self.entries)
            self.entries = [e for e in self.entries if e.index > snapshot.index] if keeps else []
            self.snapshot = snapshot
        if hard_state is not None:
            self.hard_state = hard_state
        if entries:
            first, kept = entries[0].index, self.entries
            if kept and first <= kept[-1].index:
                del kept[max(0, first - kept[0].index):]
            kept.extend(entries)


def frame(entry: LogEntry) -> bytes:
    return records.frame_entry(entry.index, entry.term, entry.kind, entry.data)


class FormatError(CorruptionError):
    """Raised when a data directory was written by an earlier raftkv: it names the
    command that converts it."""


def check_format(fs: FileSystem, data_dir: str) -> None:
    """Mark a new data directory as this format; refuse one of an earlier format."""
    fs.makedirs(data_dir)
    path = os.path.join(data_dir, FORMAT_FILE)
    if fs.exists(path):
        found = fs.read(path)
        if found != FORMAT:
            raise CorruptionError(f"{path}: unknown data format {found[:40]!r}; refusing to "
                                  f"start")
        return
    if fs.exists(os.path.join(data_dir, INTERRUPTED_UPGRADE)):
        raise FormatError(f"an upgrade of {data_dir} was interrupted; finish it with "
                          f"`raftkv upgrade --data-dir {data_dir}`")
    legacy = [d for d in LEGACY_DIRS if fs.exists(os.path.join(data_dir, d))]
    if legacy:
        raise FormatError(f"{data_dir} holds data of an earlier raftkv (format 1: "
                          f"{', '.join(d + '/' for d in legacy)}); convert it with "
                          f"`raftkv upgrade --data-dir {data_dir}` (it keeps the old files)")
    f = fs.create(path)
    try:
        f.write(FORMAT)
        f.sync()
    finally:
        f.close()
    fs.sync_dir(data_dir)


class LogStore:
    """A data directory's log and snapshots; ``recovered`` is what it held when opened,
    and ``warnings`` what recovery had to repair (a torn tail, a damaged snapshot)."""

    def __init__(self, fs: FileSystem, data_dir: str,
                 segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
                 snapshots_kept: int = SNAPSHOTS_KEPT) -> None:
        self.fs = fs
        self.data_dir = data_dir
        self.log_dir = os.path.join(data_dir, LOG_DIR)
        self.snapshot_dir = os.path.join(data_dir, SNAPSHOT_DIR)
        self.snapshots_kept = snapshots_kept
        check_format(fs, data_dir)
        for directory in (self.log_dir, self.snapshot_dir):
            fs.makedirs(directory)
        self.warnings: list[str] = []
        self._unmarked = False  # recovery dropped the log for a snapshot with no SNAP record
        self.recovered = self._recover()
        self._log = SegmentedLog(fs, self.log_dir, segment_max_bytes)
        entries = self.recovered.entries
        snapshot = self.recovered.snapshot
        self.next_index = (entries[-1].index if entries
                           else snapshot.index if snapshot is not None else 0) + 1
        if snapshot is not None and self._unmarked:
            self._log.write(records.frame_snap_mark(snapshot.index, snapshot.term),
                            self.next_index)
            self._log.sync()

    @property
    def segment_max_bytes(self) -> int:
        """A segment past this size is sealed and the next record starts a new one."""
        return self._log.segment_max_bytes

    @segment_max_bytes.setter
    def segment_max_bytes(self, value: int) -> None:
        self._log.segment_max_bytes = value

    # --- writing ------------------------------------------------------------------------

    def write(self, data: bytes, first_index: int) -> int:
        """Append framed records (``first_index``: the first entry index among them, or
        the next index when there is none); returns the segment's size before them, for
        rolling back a failed write."""
        return self._log.write(data, first_index)

    def sync(self) -> None:
        self._log.sync()

    def save(self, hard_state: HardState | None, entries: list[LogEntry],
             snapshot: Snapshot | None = None, sync: bool = True) -> None:
        """Raft's persistence of one Ready: the snapshot first (its file, then its SNAP
        record), the hard state, then the entries, which replace the log from
        ``entries[0].index``; durable when this returns if ``sync``."""
        if snapshot is not None:
            self.write_snapshot(snapshot)
        parts = []
        if snapshot is not None:
            parts.append(records.frame_snap_mark(snapshot.index, snapshot.term))
        if hard_state is not None:
            parts.append(records.frame_state(hard_state.term, hard_state.commit,
                                             hard_state.vote))
        parts.extend(frame(e) for e in entries)
        if parts:
            first = entries[0].index if entries else self.next_index
            if snapshot is not None and not entries:
                first = max(first, snapshot.index + 1)
            self._log.write(b"".join(parts), first)
            if sync:
                self._log.sync()
        if entries:
            self.next_index = entries[-1].index + 1
        elif snapshot is not None:
            self.next_index = max(self.next_index, snapshot.index + 1)
        if snapshot is not None:
            self.drop_covered()

    def write_snapshot(self, snapshot: Snapshot) -> int:
        """Write the snapshot's file crash-safely; returns its size. Safe beside writes
        to the log (it touches only the snapshot directory)."""
        return snapshots.write(self.fs, self.snapshot_dir, snapshot)

    def drop_covered(self) -> None:
        """Keep the newest snapshots and remove the log segments that only hold entries
        before the older kept one's index. The log still holds that snapshot's own
        entry: recovery compares it with the snapshot (``_recover``), and a damaged
        newest snapshot can fall back to the older one."""
        oldest_kept = snapshots.prune(self.fs, self.snapshot_dir, self.snapshots_kept)
        if oldest_kept:
            self._log.remove_covered(oldest_kept - 1)

    def close(self) -> None:
        self._log.close()

    # --- recovery -----------------------------------------------------------------------

    def _recover(self) -> Stored:
        """The newest valid snapshot, then every record in write order.

        * A snapshot that fails its checks is skipped for an older valid one; none
          older: CorruptionError (refuse to start).
        * A damaged record at the tail of the *last* segment, with nothing valid after
          it, is a torn write from a crash mid-append (never acknowledged): the segment
          is copied to ``<segment>.<offset>.broken``, cut there, and a warning says so.
        * Damage anywhere else, or a gap in the indexes, is corruption: CorruptionError
          names the file and offset, and the node refuses to start.

        Entries replace the log from their index (a Raft conflict). A SNAP record
        (index N, term T) says a snapshot replaced the log there: if the log holds
        entry N of term T, or starts after N, what follows stays (a compaction, or a
        log written after the snapshot); otherwise the whole log goes (an installed
        snapshot the log did not match). A snapshot file with no SNAP record after it
        (a single node's, or a crash between the file and its record) is judged the
        same way at the end; if that drops the log, the store then writes the record,
        so what this recovery dropped stays dropped below the entries appended next.
        """
        fs = self.fs
        snapshots.remove_unfinished(fs, self.snapshot_dir)
        snapshot = self._newest_snapshot()
        stored = Stored()
        marked = 0  # index of the last SNAP record replayed
        segments = list_segments(fs, self.log_dir)
        for position, name in enumerate(segments):
            path = os.path.join(self.log_dir, name)
            data = fs.read(path)
            try:
                for record in records.read_records(data):
                    if record.type == records.ENTRY:
                        index, term, kind, payload = records.parse_entry(record.payload)
                        entries = stored.entries
                        if entries and index > entries[-1].index + 1:
                            raise CorruptionError(
                                f"log segment {path}: entry {index} at offset {record.offset} "
                                f"follows entry {entries[-1].index}; entries are missing, "
                                f"refusing to start")
                        stored.save(None, [LogEntry(term, index, payload, EntryKind(kind))])
                    elif record.type == records.STATE:
                        stored.hard_state = HardState(*_term_vote_commit(record.payload))
                    else:
                        marked, term = records.SNAP_MARK.unpack_from(record.payload)
                        if not _follows(stored.entries, marked, term):
                            stored.entries = []
            except (records.BadRecord, ValueError) as bad:
                offset = bad.offset if isinstance(bad, records.BadRecord) else -1
                reason = bad.reason if isinstance(bad, records.BadRecord) else str(bad)
                last = position == len(segments) - 1
                if (offset < 0 or not last
                        or records.any_valid_record_after(data, offset) is not None):
                    raise CorruptionError(
                        f"log segment {path}: {reason} at offset {offset}, and it is not a "
                        f"torn tail; refusing to start (restore from a backup or remove the "
                        f"damaged data knowingly)") from None
                broken = f"{path}.{offset}.broken"
                fs.copy(path, broken)
                fs.truncate(path, offset)
                self.warnings.append(f"log segment {path}: torn write at offset {offset} "
                                     f"({reason}); cut it off, kept a copy in {broken}")
        if snapshot is not None:
            entries = stored.entries
            if snapshot.index > marked and not _follows(entries, snapshot.index, snapshot.term):
                entries = []
                self._unmarked = True
            stored.snapshot = snapshot
            stored.entries = [e for e in entries if e.index > snapshot.index]
        expected = snapshot.index + 1 if snapshot is not None else 1
        if stored.entries and stored.entries[0].index > expected:
            raise CorruptionError(f"log in {self.log_dir}: entries {expected}.."
                                  f"{stored.entries[0].index - 1} are missing; refusing to "
                                  f"start")
        return stored

    def _newest_snapshot(self) -> Snapshot | None:
        problems: list[str] = []
        for index, name in reversed(snapshots.list_snapshots(self.fs, self.snapshot_dir)):
            path = os.path.join(self.snapshot_dir, name)
            try:
                snapshot = snapshots.decode(self.fs.read(path), path)
            except CorruptionError as exc:
                problems.append(str(exc))
                continue
            if snapshot.index != index:
                problems.append(f"snapshot {path}: holds index {snapshot.index}, its name "
                                f"says {index}")
                continue
            self.warnings.extend(f"{p}; fell back to {path}" for p in problems)
            return snapshot
        if problems:
            raise CorruptionError(f"{problems[0]}, and no older valid snapshot; refusing to "
                                  f"start")
        return None


def _term_vote_commit(payload: bytes) -> tuple[int, str | None, int]:
    term, commit, vote = records.parse_state(payload)
    return term, vote, commit


def _follows(entries: list[LogEntry], index: int, term: int) -> bool:
    """Whether the contiguous ``entries`` may stay after a snapshot at ``index`` of
    ``term``: they hold that entry, or they start after it."""
    if not entries or entries[0].index > index:
        return True
    if index > entries[-1].index:
        return False
    return entries[index - entries[0].index].term == term
