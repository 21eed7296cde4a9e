"""Recovery: the newest valid snapshot, then every later WAL record, in order.

Rules (DESIGN.md, "Recovery"):

* A damaged record at the tail of the *last* segment, with nothing valid after it,
  is a torn write from a crash mid-append: the segment is copied to
  ``<name>.<offset>.broken``, cut at the damage, a warning is returned, and
  recovery goes on. Only records whose write was never acknowledged can be there.
* Damage anywhere else - an earlier segment, or valid records after the damage,
  or a gap in the indexes - is corruption: recovery raises CorruptionError naming
  the file and offset, and the node refuses to start.
* A snapshot that fails its checksum is skipped for an older valid one (the WAL
  reaches back to it); if there is none, the node refuses to start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from raftkv.core.commands import CodecError, decode
from raftkv.core.state_machine import StateMachine
from raftkv.errors import CorruptionError
from raftkv.storage import records, snapshots
from raftkv.storage.fs import FileSystem
from raftkv.storage.wal import list_segments

WAL_DIR = "wal"
SNAPSHOT_DIR = "snapshots"


@dataclass
class Recovered:
    state_machine: StateMachine
    last_index: int
    snapshot_index: int
    replayed: int = 0
    warnings: list[str] = field(default_factory=list)


def layout(data_dir: str) -> tuple[str, str]:
    return os.path.join(data_dir, WAL_DIR), os.path.join(data_dir, SNAPSHOT_DIR)


def recover(fs: FileSystem, data_dir: str, state_machine: StateMachine | None = None) -> Recovered:
    wal_dir, snap_dir = layout(data_dir)
    for directory in (data_dir, wal_dir, snap_dir):
        fs.makedirs(directory)
    for name in fs.listdir(snap_dir):
        if name.endswith(snapshots.TMP_SUFFIX):  # a snapshot interrupted before its rename
            fs.remove(os.path.join(snap_dir, name))

    sm = state_machine or StateMachine()
    warnings: list[str] = []
    snapshot_index = _load_newest_snapshot(fs, snap_dir, sm, warnings)

    last = sm.applied_index
    replayed = 0
    segments = list_segments(fs, wal_dir)
    for position, name in enumerate(segments):
        path = os.path.join(wal_dir, name)
        data = fs.read(path)
        try:
            for record in records.read_records(data):
                if record.type != records.ENTRY:
                    continue
                index, _term, payload = records.parse_entry(record.payload)
                if index <= last:
                    continue  # covered by the snapshot
                if index != last + 1:
                    raise CorruptionError(
                        f"WAL segment {path}: entry {index} at offset {record.offset} follows "
                        f"entry {last}; entries are missing, refusing to start")
                try:
                    command = decode(payload)
                except CodecError as exc:
                    raise CorruptionError(
                        f"WAL segment {path}: undecodable entry at offset {record.offset}: {exc}"
                    ) from exc
                sm.apply(index, command)
                last = index
                replayed += 1
        except records.BadRecord as bad:
            is_last = position == len(segments) - 1
            if not is_last or records.any_valid_record_after(data, bad.offset) is not None:
                raise CorruptionError(
                    f"WAL segment {path}: {bad.reason} at offset {bad.offset}, and it is not a "
                    f"torn tail; refusing to start (restore from a backup or remove the "
                    f"damaged data knowingly)") from None
            broken = f"{path}.{bad.offset}.broken"
            fs.copy(path, broken)
            fs.truncate(path, bad.offset)
            warnings.append(f"WAL segment {path}: torn write at offset {bad.offset} "
                            f"({bad.reason}); cut it off, kept a copy in {broken}")
    return Recovered(sm, last, snapshot_index, replayed, warnings)


def _load_newest_snapshot(fs: FileSystem, snap_dir: str, sm: StateMachine,
                          warnings: list[str]) -> int:
    problems: list[str] = []
    for index, name in reversed(snapshots.list_snapshots(fs, snap_dir)):
        path = os.path.join(snap_dir, name)
        try:
            loaded = snapshots.parse(fs.read(path), path)
        except CorruptionError as exc:
            problems.append(str(exc))
            continue
        if loaded.index != index:
            problems.append(f"snapshot {path}: holds index {loaded.index}, name says {index}")
            continue
        sm.restore_parts(loaded.index, loaded.items, loaded.requests)
        warnings.extend(f"{p}; fell back to {path}" for p in problems)
        return loaded.index
    if problems:
        raise CorruptionError(f"{problems[0]}, and no older valid snapshot; refusing to start")
    return 0
