"""Power loss at every step of real write sequences loses no acknowledged write.

A real workload (concurrent writers, segment rolls, snapshots, WAL truncation) runs
on a CrashFS. At random file-system operations the test records how many writes
were acknowledged so far, then takes a crash state (what a power loss right then
could leave on disk), recovers a fresh node from it, and checks every acknowledged
write is there. Planted bugs (ack before fsync, no directory fsync) must be caught.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from raftkv.core.commands import Delete, Put
from raftkv.errors import CorruptionError, StorageError
from raftkv.replication.local import LocalReplicator
from raftkv.replication.replay import recover
from raftkv.storage import failpoints
from raftkv.storage.wal import FsyncPolicy
from tests.support.crashfs import CrashFS
from tests.support.running import Running

DATA = "/data"


async def _workload(fs: CrashFS, acked: list, deleting: list, seed: int, writes: int) -> None:
    rng = random.Random(seed)
    node = LocalReplicator(recover(fs, DATA), FsyncPolicy.ALWAYS,
                           segment_max_bytes=2048, snapshot_threshold_bytes=6000)
    runner = Running(node)

    async def writer(w: int) -> None:
        for i in range(writes):
            key = b"w%d-%d" % (w, i)
            await node.submit(Put(key, b"v%d" % rng.randrange(10**6) * rng.randint(1, 8)))
            acked.append(key)
            if i % 7 == 3:  # deletes too: a deleted key must stay deleted
                deleting.append(key)  # from here on, the key may be gone
                await node.submit(Delete(key))
                acked.append(b"-" + key)

    await asyncio.gather(*(writer(w) for w in range(8)))
    await runner.stop()


def explore(seed: int, writes: int, states_wanted: int) -> tuple[int, int]:
    """Run one workload; return (crash states checked, violations: acknowledged writes lost
    or states recovery refuses)."""
    fs = CrashFS()
    acked: list[bytes] = []  # b"key" for an acked put, b"-key" for an acked delete
    deleting: list[bytes] = []  # keys whose delete was submitted (acked or not)
    rng = random.Random(seed)
    images: list[tuple[int, int, CrashFS]] = []

    def on_op(_name: str) -> None:
        seen = len(acked)  # read before the images: everything acked so far is synced
        for _ in range(3):  # several states per step: different prefixes and tears
            if len(images) < states_wanted:
                image = fs.crash(rng)
                images.append((seen, len(deleting), image))  # read after: a superset

    fs.on_op = on_op
    asyncio.run(_workload(fs, acked, deleting, seed, writes))
    lost = 0
    for seen, deletes_submitted, image in images:
        try:
            sm = recover(image, DATA).state_machine
        except CorruptionError:  # a crash state the node cannot start from is a failure too
            lost += 1
            continue
        may_be_gone = set(deleting[:deletes_submitted])
        for key in acked[:seen]:
            if key.startswith(b"-"):
                lost += sm.keyspace.raw(key[1:]) is not None
            elif key not in may_be_gone:
                lost += sm.keyspace.raw(key) is None
    return len(images), lost


def test_no_acknowledged_write_is_lost_in_any_crash_state():
    total = 0
    for seed in range(4):
        states, lost = explore(seed, writes=40, states_wanted=600)
        assert lost == 0, f"seed {seed}: {lost} acknowledged writes lost"
        total += states
    assert total >= 2000  # the figure: crash states explored
    print(f"\ncrash states explored: {total}, acknowledged writes lost: 0")


@pytest.mark.parametrize("bug", ["ack_before_fsync", "skip_dir_fsync"])
def test_negative_control_planted_durability_bugs_are_caught(bug):
    failpoints.configure(f"{bug}=on")
    try:
        lost = sum(explore(seed, writes=40, states_wanted=300)[1] for seed in range(3))
    finally:
        failpoints.configure("")
    assert lost > 0, f"the crash-state test did not notice {bug}"


def test_fsync_failure_acknowledges_nothing_after_it_and_ends_the_replicator_s_run():
    async def run() -> tuple[int, int]:
        fs = CrashFS()
        node = LocalReplicator(recover(fs, DATA), FsyncPolicy.ALWAYS)
        runner = Running(node)
        await node.submit(Put(b"before", b"1"))
        assert not runner.task.done()
        fs.fail_sync = True
        failures = 0
        for i in range(3):
            try:
                await node.submit(Put(b"k%d" % i, b"x"))
            except StorageError:
                failures += 1
        fs.fail_sync = False  # even once fsync works again, the writer stays failed
        try:
            await node.submit(Put(b"later", b"x"))
        except StorageError:
            failures += 1
        keys = len(node.state_machine.keyspace)
        await node.writer.drain()
        with pytest.raises(ExceptionGroup) as died:  # app.py then stops the node
            await asyncio.wait_for(runner.task, 2)
        assert died.value.subgroup(StorageError) is not None, died.value
        return failures, keys

    failures, keys = asyncio.run(run())
    assert failures == 4 and keys == 1


def test_a_write_whose_apply_fails_fails_it_and_every_later_write_instead_of_hanging():
    async def run() -> list[str]:
        fs = CrashFS()
        node = LocalReplicator(recover(fs, DATA), FsyncPolicy.NO)

        def buggy(command, result):  # a planted bug in the apply step (an observer)
            if command.key == b"boom":
                raise RuntimeError("planted")

        node.observers.append(buggy)
        outcomes = []
        for key in (b"fine", b"boom", b"after"):
            try:
                await asyncio.wait_for(node.submit(Put(key, b"x")), 2)
                outcomes.append("ok")
            except StorageError:
                outcomes.append("failed")
        return outcomes

    assert asyncio.run(run()) == ["ok", "failed", "failed"]


def test_disk_full_fails_the_write_keeps_the_log_intact_and_recovers_when_space_returns():
    async def run(fs: CrashFS) -> list[str]:
        node = LocalReplicator(recover(fs, DATA), FsyncPolicy.ALWAYS)
        outcomes = []
        await node.submit(Put(b"a", b"1"))
        fs.space_left = 10
        try:
            await node.submit(Put(b"b", b"2" * 100))
            outcomes.append("acked")
        except StorageError as exc:
            outcomes.append(exc.code)
        fs.space_left = None
        await node.submit(Put(b"c", b"3"))
        outcomes.append("acked")
        await node.close()
        return outcomes

    fs = CrashFS()
    assert asyncio.run(run(fs)) == ["disk_full", "acked"]
    recovered = recover(fs, DATA)
    assert recovered.warnings == []
    assert [e.key for e in recovered.state_machine.keyspace.scan(0)] == [b"a", b"c"]
