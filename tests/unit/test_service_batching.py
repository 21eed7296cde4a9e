"""Plain puts of one loop turn share one MultiPut (one log entry) across callers,
and any other write submits the pending batch first, so the log keeps each caller's
order."""

from __future__ import annotations

import asyncio
import random

from raftkv.clock import ManualClock
from raftkv.core.commands import Cond, Outcome
from raftkv.replication.local import LocalReplicator
from raftkv.replication.replay import recover
from raftkv.service.service import KVService, ServiceLimits
from raftkv.storage.wal import FsyncPolicy
from tests.support.crashfs import CrashFS


async def _service() -> tuple[KVService, LocalReplicator, CrashFS]:
    fs = CrashFS()
    replicator = LocalReplicator(recover(fs, "/data"), FsyncPolicy.ALWAYS)
    return KVService(replicator, ManualClock(), ServiceLimits()), replicator, fs


def test_plain_puts_of_one_turn_become_one_log_entry():
    async def go():
        service, replicator, _ = await _service()
        a = service.put_many([(b"a", b"1")])
        b = service.put_many([(b"b", b"2"), (b"c", b"3")])
        assert a is b  # two callers, one batch
        result = await a
        assert result.outcome is Outcome.OK and result.affected == 3
        assert replicator.state_machine.applied_index == 1
        later = await service.put_many([(b"a", b"4")])  # a new turn, a new entry
        assert replicator.state_machine.applied_index == 2 and later.ok
        values = service.get_values([b"a", b"b", b"c"])
        assert values == [b"4", b"2", b"3"]
        await replicator.close()
    asyncio.run(go())


def test_another_write_submits_the_pending_batch_first():
    async def go():
        service, replicator, _ = await _service()
        batch = service.put_many([(b"k", b"1")])
        replace = service.put(b"k", b"2", cond=Cond.EXISTS)  # SET k 2 XX after SET k 1
        after = service.put_many([(b"k", b"3"), (b"j", b"x")])
        first, second, third = await asyncio.gather(batch, replace, after)
        assert first.revision < second.revision < third.revision
        assert second.outcome is Outcome.OK  # it saw the batch's k
        assert service.get_values([b"k"]) == [b"3"]
        await replicator.close()
    asyncio.run(go())


def test_an_acknowledged_batch_survives_power_loss():
    async def go():
        service, replicator, fs = await _service()
        await asyncio.gather(service.put_many([(b"a", b"1")]), service.put_many([(b"b", b"2")]))
        for seed in range(20):  # power lost right after the acknowledgement
            image = fs.crash(random.Random(seed))
            keyspace = recover(image, "/data").state_machine.keyspace
            assert keyspace.value(b"a", 0) == b"1" and keyspace.value(b"b", 0) == b"2"
        await replicator.close()
    asyncio.run(go())


def test_a_refused_batch_fails_every_caller():
    async def go():
        service, replicator, _ = await _service()
        await replicator.close()  # shutting down: proposals are refused
        a = service.put_many([(b"a", b"1")])
        b = service.put_many([(b"b", b"2")])
        for future in (a, b):
            try:
                await future
            except Exception as exc:
                assert "shutting down" in str(exc)
            else:
                raise AssertionError("a refused batch was acknowledged")
    asyncio.run(go())
