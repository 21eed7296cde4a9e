"""Torn tails are cut and recovered exactly; damage elsewhere refuses to start."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from raftkv.core.commands import Put, encode
from raftkv.errors import CorruptionError, DiskFullError
from raftkv.replication.local import LocalReplicator
from raftkv.replication.raft.log import WalRaftLog
from raftkv.replication.replay import rebuild, recover
from raftkv.storage import records
from raftkv.storage.fs import OsFileSystem
from raftkv.storage.log_store import LogEntry
from raftkv.storage.wal import FsyncPolicy
from tests.support.running import running


def write_keys(data_dir: Path, keys: list[bytes], **options) -> None:
    async def run() -> None:
        fs = OsFileSystem()
        node = LocalReplicator(recover(fs, str(data_dir)), FsyncPolicy.ALWAYS,
                               **options)
        async with running(node):
            for key in keys:
                await node.submit(Put(key, b"value-of-" + key))

    asyncio.run(run())


def recovered_keys(data_dir: Path) -> list[bytes]:
    keyspace = recover(OsFileSystem(), str(data_dir)).state_machine.keyspace
    return [entry.key for entry in keyspace.scan(0, limit=10**6)]


def recovery_warnings(data_dir: Path) -> list[str]:
    return recover(OsFileSystem(), str(data_dir)).warnings


class SingleNode:
    """Keys written by a single node's replicator, read back by its recovery."""

    write = staticmethod(write_keys)
    keys = staticmethod(recovered_keys)
    warnings = staticmethod(recovery_warnings)


class ClusterMember:
    """Keys appended as a Raft node saves them (one ENTRY record each), read back by a
    cluster member's recovery: the same store, so the same rules."""

    @staticmethod
    def write(data_dir: Path, keys: list[bytes], segment_max_bytes: int = 64 << 20) -> None:
        raft_log = WalRaftLog(OsFileSystem(), str(data_dir), segment_max_bytes)
        stored = raft_log.load()
        index = stored.entries[-1].index if stored.entries else 0
        for key in keys:
            index += 1
            raft_log.save(None, [LogEntry(1, index, encode(Put(key, b"value-of-" + key)))])
        raft_log.store.close()

    @staticmethod
    def keys(data_dir: Path) -> list[bytes]:
        raft_log = WalRaftLog(OsFileSystem(), str(data_dir))
        state = rebuild(raft_log.load())
        raft_log.store.close()
        return [entry.key for entry in state.keyspace.scan(0, limit=10**6)]

    @staticmethod
    def warnings(data_dir: Path) -> list[str]:
        return WalRaftLog(OsFileSystem(), str(data_dir)).warnings


@pytest.fixture(params=[SingleNode, ClusterMember], ids=["single-node", "cluster-member"])
def node(request):
    return request.param


def record_ends(segment: Path) -> list[int]:
    return [r.end for r in records.read_records(segment.read_bytes())]


def test_cut_at_every_byte_of_the_last_records_recovers_exactly_the_whole_ones(tmp_path, node):
    keys = [b"k%02d" % i for i in range(12)]
    base = tmp_path / "base"
    node.write(base, keys)
    segment = next((base / "log").glob("*.wal"))
    ends = record_ends(segment)
    first_cut = ends[-4]
    cases = 0
    for cut in range(first_cut, ends[-1]):
        work = tmp_path / f"cut{cut}"
        shutil.copytree(base, work)
        os.truncate(work / "log" / segment.name, cut)
        whole = sum(1 for end in ends if end <= cut)
        assert node.keys(work) == keys[:whole], f"cut at byte {cut}"
        if cut not in ends:  # a torn record: a copy is kept, the segment is cut
            assert list((work / "log").glob("*.broken"))
        cases += 1
        shutil.rmtree(work)
    assert cases > 50


@pytest.mark.parametrize("tail", [b"\x00" * 100, b"\xde\xad\xbe\xef" * 9, b"\x01"])
def test_garbage_or_zeros_after_the_last_record_are_a_torn_tail(tmp_path, tail, node):
    keys = [b"a", b"b", b"c"]
    node.write(tmp_path, keys)
    segment = next((tmp_path / "log").glob("*.wal"))
    with open(segment, "ab") as f:
        f.write(tail)
    warnings = node.warnings(tmp_path)  # cuts the tail, keeping a copy
    assert "torn write" in warnings[0] and ".broken" in warnings[0]
    assert list((tmp_path / "log").glob("*.broken"))
    assert node.keys(tmp_path) == keys
    node.write(tmp_path, [b"d"])  # and the log goes on after the cut
    assert node.keys(tmp_path) == [*keys, b"d"]


def test_a_bit_flip_mid_log_refuses_to_start_naming_file_and_offset(tmp_path, node):
    node.write(tmp_path, [b"k%02d" % i for i in range(20)])
    segment = next((tmp_path / "log").glob("*.wal"))
    data = bytearray(segment.read_bytes())
    offset = record_ends(segment)[5]  # the start of record 7
    data[offset + 20] ^= 0x04
    segment.write_bytes(bytes(data))
    with pytest.raises(CorruptionError) as err:
        node.keys(tmp_path)
    message = str(err.value)
    assert segment.name in message and f"offset {offset}" in message and "refusing" in message


def test_a_bad_record_in_an_older_segment_refuses_to_start(tmp_path, node):
    node.write(tmp_path, [b"k%03d" % i for i in range(200)], segment_max_bytes=1024)
    segments = sorted((tmp_path / "log").glob("*.wal"))
    assert len(segments) > 3
    first = segments[0]
    first.write_bytes(first.read_bytes()[:-3])  # the tail of a *sealed* segment
    with pytest.raises(CorruptionError, match=first.name):
        node.keys(tmp_path)


def test_a_damaged_newest_snapshot_falls_back_to_the_older_one(tmp_path):
    keys = [b"k%04d" % i for i in range(600)]
    write_keys(tmp_path, keys, segment_max_bytes=2048, snapshot_threshold_bytes=8192)
    snaps = sorted((tmp_path / "snapshots").glob("*.snap"))
    assert len(snaps) == 2
    newest = snaps[-1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    result = recover(OsFileSystem(), str(tmp_path))
    assert [e.key for e in result.state_machine.keyspace.scan(0, limit=10_000)] == keys
    assert "checksum mismatch" in result.warnings[0] and snaps[0].name in result.warnings[0]


def test_a_damaged_only_snapshot_refuses_to_start(tmp_path):
    write_keys(tmp_path, [b"k%04d" % i for i in range(600)], segment_max_bytes=2048,
               snapshot_threshold_bytes=8192)
    snaps = sorted((tmp_path / "snapshots").glob("*.snap"))
    snaps[0].unlink()
    snaps[-1].write_bytes(snaps[-1].read_bytes()[:-1] + b"\x00")
    with pytest.raises(CorruptionError, match="no older valid snapshot"):
        recover(OsFileSystem(), str(tmp_path))


def test_files_are_private_to_the_user(tmp_path):
    data_dir = tmp_path / "d"
    write_keys(data_dir, [b"x"])
    assert (data_dir / "log").stat().st_mode & 0o777 == 0o700
    segment = next((data_dir / "log").glob("*.wal"))
    assert segment.stat().st_mode & 0o777 == 0o600


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.mark.skipif(not _can_mount(), reason="mounting a tmpfs needs root")
def test_disk_full_on_a_real_tmpfs_fails_writes_and_keeps_acknowledged_data(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        data_dir = mount / "data"

        async def fill() -> tuple[list[bytes], int]:
            fs = OsFileSystem()
            node = LocalReplicator(recover(fs, str(data_dir)),
                                   FsyncPolicy.ALWAYS, snapshot_threshold_bytes=10**9)
            acked, refused = [], 0
            for i in range(400):
                key = b"k%04d" % i
                try:
                    await node.submit(Put(key, b"x" * 1000))
                    acked.append(key)
                except DiskFullError:
                    refused += 1
            await node.close()
            return acked, refused

        acked, refused = asyncio.run(fill())
        assert refused > 0 and len(acked) > 50
        assert recovered_keys(data_dir) == acked
    finally:
        subprocess.run(["umount", str(mount)], check=True)
