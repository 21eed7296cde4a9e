"""Rebuilding the state machine from what a log store holds: the snapshot's image,
then the entries after it, in order. The one replay of both replicators - a single
node replays every entry it logged; a Raft node those up to its persisted commit
index (the rest waits for the leader's word)."""

from __future__ import annotations

from dataclasses import dataclass

from raftkv.config import HistoryLimits
from raftkv.core import image
from raftkv.core.commands import CodecError, decode
from raftkv.core.state_machine import StateMachine
from raftkv.errors import CorruptionError
from raftkv.storage.fs import FileSystem
from raftkv.storage.log_store import EntryKind, LogStore, Stored


def rebuild(stored: Stored, upto: int | None = None, where: str = "the log",
            history: HistoryLimits | None = None) -> StateMachine:
    """The state machine of ``stored``: its snapshot's image, then each entry up to
    index ``upto`` (None: all). A no-op or membership entry only advances the index.
    ``history``: how much of the change history it keeps (the defaults if None)."""
    limits = history or HistoryLimits()
    sm = StateMachine(history_events=limits.max_events, history_bytes=limits.max_bytes)
    if stored.snapshot is not None:
        if stored.snapshot.data:
            image.decode(stored.snapshot.data, f"snapshot {stored.snapshot.index} in "
                                               f"{where}").restore(sm)
        sm.applied_index = stored.snapshot.index
    for entry in stored.entries:
        if upto is not None and entry.index > upto:
            break
        if entry.index <= sm.applied_index:
            continue
        if entry.kind is not EntryKind.NORMAL:
            sm.applied_index = entry.index
            continue
        try:
            command = decode(entry.data)
        except CodecError as exc:
            raise CorruptionError(f"{where}: entry {entry.index} does not decode ({exc}); "
                                  f"refusing to start") from exc
        sm.apply(entry.index, command)
    return sm


@dataclass
class Recovered:
    """A single node's data directory, opened: its store, and the state machine
    rebuilt from it."""

    store: LogStore
    state_machine: StateMachine
    replayed: int

    @property
    def last_index(self) -> int:
        return self.store.next_index - 1

    @property
    def snapshot_index(self) -> int:
        snapshot = self.store.recovered.snapshot
        return snapshot.index if snapshot is not None else 0

    @property
    def warnings(self) -> list[str]:
        return self.store.warnings


def recover(fs: FileSystem, data_dir: str, history: HistoryLimits | None = None
            ) -> Recovered:
    """Open a single node's data directory and replay every entry it holds."""
    store = LogStore(fs, data_dir)
    stored = store.recovered
    state_machine = rebuild(stored, where=store.log_dir, history=history)
    return Recovered(store, state_machine, len(stored.entries))
