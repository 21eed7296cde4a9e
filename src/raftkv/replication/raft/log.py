"""Where a Raft node keeps what it must not forget: ``RaftLog``, the interface the
driver persists a Ready through, and its two implementations.

``save`` returns only once everything handed to it is durable (with
``sync_each_save``), so the driver may then send the Ready's messages (a vote or an
acknowledgement never outruns the disk, §5.1).

* ``MemoryRaftLog`` - the in-memory twin, for tests and the simulator.
* ``WalRaftLog`` - a thin adapter over the node's ``LogStore`` (``storage/``), which
  owns the files, the record grammar and the recovery rules; this class only keeps
  the in-memory view that ``load`` answers with, by the same ``Stored.save`` rule the
  store replays at recovery.
"""

from __future__ import annotations

from typing import Protocol

from raftkv.storage.fs import FileSystem
from raftkv.storage.log_store import HardState, LogEntry, LogStore, Stored
from raftkv.storage.snapshots import Snapshot
from raftkv.storage.wal import DEFAULT_SEGMENT_MAX_BYTES


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


class MemoryRaftLog:
    sync_each_save = True

    def __init__(self) -> None:
        self._stored = Stored()

    def sync_now(self) -> None:
        pass

    def load(self) -> Stored:
        return self._stored.copy()

    def save(self, hard_state: HardState | None, entries: list[LogEntry],
             snapshot: Snapshot | None = None) -> None:
        self._stored.save(hard_state, entries, snapshot)


class WalRaftLog:
    """Synchronous: call ``save`` from the driver's I/O thread (it fsyncs)."""

    def __init__(self, fs: FileSystem, data_dir: str,
                 segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES, sync: bool = True) -> None:
        self.store = LogStore(fs, data_dir, segment_max_bytes)
        self.sync_each_save = sync  # False under --fsync everysec/no: sync_now() does it
        self._stored = self.store.recovered.copy()

    @property
    def warnings(self) -> list[str]:
        """What recovery repaired (a torn tail cut, a damaged snapshot skipped)."""
        return self.store.warnings

    def load(self) -> Stored:
        return self._stored.copy()

    def save(self, hard_state: HardState | None, entries: list[LogEntry],
             snapshot: Snapshot | None = None) -> None:
        self.store.save(hard_state, entries, snapshot, sync=self.sync_each_save)
        self._stored.save(hard_state, entries, snapshot)

    def sync_now(self) -> None:
        self.store.sync()
