"""The leader's side of blocked pops (service/blocking.py), in process: a call sent
again finds the waiter it has, a call sent again after a change of leader is settled
from the request table before anything is popped, a leader that steps down drops its
waiters, and a Blocked follows the leadership until an answer comes. (Real clients on
real clusters: tests/integration/test_resp_blocking.py and tests/faults/test_queue.py.)"""

from __future__ import annotations

import asyncio

import pytest

from raftkv.clock import ManualClock
from raftkv.core.commands import Result, TypedOp, TypedResult
from raftkv.core.containers import Kind
from raftkv.errors import Unavailable, Unblocked
from raftkv.replication.local import LocalReplicator
from raftkv.replication.replay import recover
from raftkv.service.blocking import BlockCall, Blocked, decode_answer, new_waiter_id
from raftkv.service.service import KVService, ServiceLimits
from raftkv.storage.wal import FsyncPolicy
from tests.support.crashfs import CrashFS

POP = [b"lmpop", b"1", b"q", b"LEFT"]


async def _leader() -> tuple[KVService, LocalReplicator]:
    replicator = LocalReplicator(recover(CrashFS(), "/data"), FsyncPolicy.NO)
    return KVService(replicator, ManualClock(), ServiceLimits()), replicator


def _call(waiter_id: bytes, resumed: bool = False, stop: bool = False) -> bytes:
    call = BlockCall(waiter_id, POP, [b"q"], Kind.LIST, 0.0)
    return (call.stopping() if stop else call).sent(0.0, resumed).encode()


async def _list(service: KVService) -> object:
    result = service.typed([b"lrange", b"q", b"0", b"-1"])  # (a read may answer at once)
    return (result if isinstance(result, TypedResult) else await result).reply


async def _answered(answer: asyncio.Future[bytes], within_s: float = 0.5) -> object:
    return decode_answer(await asyncio.wait_for(asyncio.shield(answer), within_s)).reply


def test_a_pop_the_old_leader_applied_is_the_answer_and_nothing_more_is_popped():
    async def go():
        service, replicator = await _leader()
        await service.typed([b"rpush", b"q", b"only", b"next"])
        waiter_id = new_waiter_id()
        # the old leader's attempt 0 popped "only"; it died before answering
        await replicator.submit(TypedOp(tuple(POP), waiter_id + (0).to_bytes(4, "big"), 0))
        answer = service.waiters.serve(_call(waiter_id, resumed=True))
        assert await _answered(answer) == [b"q", [b"only"]]
        assert await _list(service) == [b"next"]
        # negative control: a leader that parked the call afresh would pop "next" too
        fresh = service.waiters.serve(_call(new_waiter_id()))
        assert await _answered(fresh) == [b"q", [b"next"]]
        await replicator.close()
    asyncio.run(go())


def test_a_resumed_call_pops_nothing_twice_when_the_element_is_gone():
    async def go():
        service, replicator = await _leader()
        await service.typed([b"rpush", b"q", b"only"])
        waiter_id = new_waiter_id()
        await replicator.submit(TypedOp(tuple(POP), waiter_id + (0).to_bytes(4, "big"), 0))
        assert await _answered(service.waiters.serve(_call(waiter_id, resumed=True))) == \
            [b"q", [b"only"]]
        # negative control: without settling, the same client would wait for ever here
        parked = service.waiters.serve(_call(waiter_id))
        with pytest.raises(TimeoutError):
            await _answered(parked, 0.2)
        await replicator.close()
    asyncio.run(go())


def test_a_call_sent_again_finds_its_waiter_and_a_stop_settles_it():
    async def go():
        service, replicator = await _leader()
        waiter_id = new_waiter_id()
        first = service.waiters.serve(_call(waiter_id))
        again = service.waiters.serve(_call(waiter_id, resumed=True))  # its answer was lost
        assert len(service.waiters) == 1
        await service.typed([b"rpush", b"q", b"a", b"b"])
        assert await _answered(first) == await _answered(again) == [b"q", [b"a"]]
        assert await _list(service) == [b"b"]
        stopped = new_waiter_id()
        await service.typed([b"lpop", b"q"])
        parked = service.waiters.serve(_call(stopped))
        stop = service.waiters.serve(_call(stopped, resumed=True, stop=True))
        assert decode_answer(await stop) is None and decode_answer(await parked) is None
        assert len(service.waiters) == 0
        await replicator.close()
    asyncio.run(go())


def test_a_leader_that_steps_down_drops_its_waiters_and_blocked_follows_to_the_next():
    async def go():
        service, replicator = await _leader()
        sent: list[BlockCall] = []
        leading = [False]

        def call_leader(call: BlockCall) -> asyncio.Future[Result | None]:
            sent.append(call)
            if not leading[0]:
                raise Unavailable("no leader yet")
            return service.waiters.take(call)

        blocked = Blocked(call_leader, BlockCall(new_waiter_id(), POP, [b"q"], Kind.LIST, 0))
        await asyncio.sleep(0.12)
        assert len(sent) >= 2 and len(service.waiters) == 0  # retried while no leader
        leading[0] = True
        await asyncio.sleep(0.12)
        assert len(service.waiters) == 1
        service.waiters.step_down()  # the leadership moved: this leader drops it...
        assert len(service.waiters) == 0
        await asyncio.sleep(0.12)
        assert len(service.waiters) == 1  # ...and the Blocked sent it again
        assert sent[-1].resumed and not sent[0].resumed
        await service.typed([b"rpush", b"q", b"x"])
        assert (await asyncio.wait_for(blocked.future, 1)).reply == [b"q", [b"x"]]
        # CLIENT UNBLOCK ... ERROR: the leader answers a nil, the client gets the error
        unblocked = Blocked(call_leader, BlockCall(new_waiter_id(), POP, [b"q"], Kind.LIST, 0))
        await asyncio.sleep(0.05)
        assert unblocked.stop(Unblocked("client unblocked")) and not unblocked.stop()
        with pytest.raises(Unblocked):
            await asyncio.wait_for(unblocked.future, 1)
        await replicator.close()
    asyncio.run(go())
