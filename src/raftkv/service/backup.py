"""Backups: a consistent, point-in-time copy of a node's data in one file, taken from a
live node (``GET /v1/admin/backup``, ``raftkv backup``, ``[backup]``), checked, and
restored into a new data directory (``raftkv restore``).

The file is a snapshot file (``storage/snapshots.py``: magic, index, CRC-32 over the
whole) around the state machine's image (``core/image.py``: every value type, TTLs,
leases, the script cache, the table of applied request ids, with its own CRC-32). A
truncated or altered file fails one of the two checks and is refused by name.

Consistency: ``take`` first passes a linearizable read barrier, so every write
acknowledged before the backup was asked for is in it, then copies the state machine
at that point. Only the copy runs on the event loop (the copies share the immutable
entries); encoding runs on a worker thread while writes go on.

Restore writes the image as the data directory's snapshot at the backup's index. The
node starts from it alone: a single node, or the first member of a new cluster (its
only voter; ``raftkv cluster add`` brings in the others, which get the snapshot).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import os
from dataclasses import dataclass

from raftkv.config import BackupConfig
from raftkv.core import image
from raftkv.errors import RaftKVError
from raftkv.service.ports import Consistency
from raftkv.service.service import KVService
from raftkv.storage import snapshots
from raftkv.storage.fs import FileSystem, write_atomically
from raftkv.storage.log_store import FORMAT_FILE, LogStore

log = logging.getLogger("raftkv.backup")

SUFFIX = ".rkvbackup"


@dataclass(frozen=True, slots=True)
class Backup:
    index: int  # the last log entry it covers
    data: bytes  # the file's bytes
    sha256: str  # of ``data``, hex


async def take(service: KVService) -> Backup:
    """Every write acknowledged before this call, at one point in time."""
    barrier = service.replicator.read_barrier(Consistency.LINEARIZABLE)
    if barrier is not None:
        await barrier
    state = service.replicator.state_machine.snapshot()  # the copy: the only pause

    def encode() -> Backup:
        data = snapshots.encode(snapshots.Snapshot(state.index, 0, image.encode(state)))
        return Backup(state.index, data, hashlib.sha256(data).hexdigest())

    return await asyncio.get_running_loop().run_in_executor(None, encode)


def check(data: bytes, name: str) -> snapshots.Snapshot:
    """The backup in ``data``, once both its checksums and its image's structure are
    verified; CorruptionError naming ``name`` otherwise."""
    snapshot = snapshots.decode(data, name)
    image.decode(snapshot.data, f"backup {name}")
    return snapshot


def restore(fs: FileSystem, data_dir: str, snapshot: snapshots.Snapshot, node_id: str) -> None:
    """Seed the new data directory ``data_dir`` with ``snapshot`` (checked by ``check``);
    ``node_id`` is its only voter should it start as a cluster's first member."""
    if fs.exists(os.path.join(data_dir, FORMAT_FILE)) or (
            fs.exists(data_dir) and fs.listdir(data_dir)):
        raise FileExistsError(f"{data_dir} is not empty: restore seeds a new data directory")
    store = LogStore(fs, data_dir)
    store.save(None, [], snapshots.Snapshot(snapshot.index, snapshot.term, snapshot.data,
                                            voters=(node_id,)))
    store.close()


class Schedule:
    """``[backup]``: a backup into ``dir`` every ``interval_s`` (written to a temporary
    name, fsynced, renamed, the directory fsynced), the newest ``retain`` kept."""

    def __init__(self, service: KVService, config: BackupConfig, fs: FileSystem) -> None:
        self.service = service
        self.config = config
        self.fs = fs  # (``dir`` exists: the node made it at start-up)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval_s)
            try:
                await self.once()
            except (OSError, RaftKVError) as exc:  # (no leader, a full disk): the node goes
                log.error("scheduled backup failed: %s", exc)  # on; the next may work

    async def once(self) -> str:
        backup = await take(self.service)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"raftkv-{stamp}-{backup.index}{SUFFIX}"
        await asyncio.get_running_loop().run_in_executor(None, self._write, name, backup.data)
        path = os.path.join(self.config.dir, name)
        log.info("backup written", extra={"path": path, "index": backup.index,
                                          "bytes": len(backup.data), "sha256": backup.sha256})
        return path

    def _write(self, name: str, data: bytes) -> None:
        fs, directory = self.fs, self.config.dir
        write_atomically(fs, directory, name, data)
        kept = sorted(entry for entry in fs.listdir(directory) if entry.endswith(SUFFIX))
        for old in kept[:-self.config.retain]:
            fs.remove(os.path.join(directory, old))
        fs.sync_dir(directory)
