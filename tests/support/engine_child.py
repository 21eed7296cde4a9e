"""A child process that writes through the storage engine and reports every ack.

    python -m tests.support.engine_child DATA_DIR START_KEY [--fsync always]

Prints ``ACK <key>`` (flushed) after each acknowledged put, so the parent knows
exactly which writes were acknowledged before it sends SIGKILL (or a failpoint
set through RAFTKV_FAILPOINTS ends the process with status 137).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from raftkv.core.commands import Put
from raftkv.replication.local import LocalReplicator
from raftkv.replication.replay import recover
from raftkv.storage.fs import OsFileSystem
from raftkv.storage.wal import FsyncPolicy


async def main(data_dir: str, start: int, policy: FsyncPolicy, writers: int) -> None:
    fs = OsFileSystem()
    node = LocalReplicator(recover(fs, data_dir), policy,
                           segment_max_bytes=16 * 1024, snapshot_threshold_bytes=48 * 1024)
    out = sys.stdout
    counter = iter(range(start, 10**9))

    async def writer() -> None:
        while True:
            key = b"key-%09d" % next(counter)
            await node.submit(Put(key, key * 4))
            out.write(f"ACK {key.decode()}\n")
            out.flush()

    print("READY", flush=True)
    async with asyncio.TaskGroup() as tasks:  # killed with -9 while it runs
        tasks.create_task(node.run())
        for _ in range(writers):
            tasks.create_task(writer())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("start", type=int)
    parser.add_argument("--fsync", default="always")
    parser.add_argument("--writers", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.data_dir, args.start, FsyncPolicy(args.fsync), args.writers))
