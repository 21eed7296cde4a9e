"""What the service promises every front, on every replicator (conftest.py runs each
test over a single node and over the leader of a three-node Raft cluster)."""

from __future__ import annotations

import pytest

from raftkv.core.commands import Cond, Outcome
from raftkv.core.eviction import Limits, Policy
from raftkv.deferred import Deferred
from raftkv.errors import InvalidArgument, OutOfMemory
from raftkv.service.ports import Consistency
from tests.contract.conftest import Node


async def read(value):
    """A read's answer, whether it came at once or after its barrier."""
    return await value if isinstance(value, Deferred) else value


def test_a_put_is_read_back_with_revisions_that_only_grow(backend):
    async def body(node: Node) -> None:
        s = node.service
        first = await s.put(b"k", b"v1")
        second = await s.put(b"k", b"v2")
        assert first.ok and second.ok and second.revision > first.revision
        entry = await read(s.get(b"k"))
        assert (entry.value, entry.version) == (b"v2", 2)
        assert entry.create_revision == first.revision and entry.mod_revision == second.revision
        for level in Consistency:
            assert await read(s.get_value(b"k", level)) == b"v2"
    backend(body)


def test_a_key_with_a_ttl_is_gone_after_its_deadline_and_the_cycle_deletes_it(backend):
    async def body(node: Node) -> None:
        s = node.service
        await s.put(b"session", b"x", ttl_ms=1_000)
        await s.put(b"stays", b"y")
        node.clock.advance_ms(999)
        assert await read(s.get_value(b"session")) == b"x"
        node.clock.advance_ms(1)
        assert await read(s.get_value(b"session")) is None  # hidden at once
        assert s.is_stored(b"session")  # ... and deleted by the leader's cycle
        assert await s.expire_due() == 1
        assert not s.is_stored(b"session") and s.is_stored(b"stays")
    backend(body)


def test_conditions_decide_at_apply_time(backend):
    async def body(node: Node) -> None:
        s = node.service
        created = await s.put(b"cfg", b"1", cond=Cond.ABSENT)
        assert created.ok
        assert (await s.put(b"cfg", b"2", cond=Cond.ABSENT)).outcome is Outcome.CONDITION_FAILED
        swapped = await s.put(b"cfg", b"3", cond=Cond.MOD_REVISION,
                              expected_mod_revision=created.revision)
        assert swapped.ok
        stale = await s.put(b"cfg", b"4", cond=Cond.MOD_REVISION,
                            expected_mod_revision=created.revision)
        assert stale.outcome is Outcome.CONDITION_FAILED
        assert await read(s.get_value(b"cfg")) == b"3"
        assert (await s.delete(b"cfg", cond=Cond.MOD_REVISION,
                               expected_mod_revision=created.revision)).outcome \
            is Outcome.CONDITION_FAILED
        assert (await s.delete(b"cfg")).ok and (await s.delete(b"cfg")).outcome \
            is Outcome.NOT_FOUND
    backend(body)


def test_a_retried_request_id_applies_once(backend):
    async def body(node: Node) -> None:
        s = node.service
        first = await s.incr_by(b"counter", 5, request_id=b"req-1")
        again = await s.incr_by(b"counter", 5, request_id=b"req-1")
        assert again == first
        assert await read(s.get_value(b"counter")) == b"5"
    backend(body)


def test_counters_refuse_text_and_overflow(backend):
    async def body(node: Node) -> None:
        s = node.service
        await s.put(b"text", b"abc")
        assert (await s.incr_by(b"text", 1)).outcome is Outcome.NOT_INTEGER
        await s.put(b"big", str(2**63 - 1).encode())
        assert (await s.incr_by(b"big", 1)).outcome is Outcome.OVERFLOW
        assert (await s.incr_by(b"new", -3)).entry.value == b"-3"
    backend(body)


def test_reads_of_many_keys_scans_and_counts_see_the_same_state(backend):
    async def body(node: Node) -> None:
        s = node.service
        await s.multi_put([(b"user:%d" % i, b"%d" % i) for i in range(5)] + [(b"order:1", b"o")])
        assert await read(s.get_values([b"user:1", b"nope", b"order:1"])) == \
            [b"1", None, b"o"]
        assert await read(s.exists([b"user:1", b"user:1", b"nope"])) == 2
        page = await read(s.scan_keys(pattern=b"user:*"))
        assert page.keys == [b"user:%d" % i for i in range(5)] and page.last is None
        assert await read(s.key_count()) == 6
        assert (await s.flush()).affected == 6
        assert await read(s.key_count()) == 0
    backend(body)


def test_bad_keys_and_values_are_refused_before_anything_is_logged(backend):
    async def body(node: Node) -> None:
        s = node.service
        applied = s.status().applied_index
        for bad in (b"", b"k" * 1025):
            with pytest.raises(InvalidArgument):
                s.put(bad, b"v")
            with pytest.raises(InvalidArgument):
                s.get_values([b"ok", bad])
        with pytest.raises(InvalidArgument):
            s.put(b"k", b"v", ttl_ms=0)
        assert s.status().applied_index == applied
    backend(body)


def test_under_noeviction_a_full_keyspace_refuses_writes_and_keeps_its_keys(backend):
    async def body(node: Node) -> None:
        s = node.service
        for i in range(3):
            await s.put(b"k%d" % i, b"v")
        with pytest.raises(OutOfMemory):
            await s.put(b"k3", b"v")
        assert await read(s.key_count()) == 3
        assert (await s.delete(b"k0")).ok  # deletes are always allowed (Redis: not denyoom)
        assert (await s.put(b"k3", b"v")).ok
    backend(body, Limits(policy=Policy.NOEVICTION, max_keys=3))


def test_an_eviction_policy_makes_room_by_proposing_deletes(backend):
    async def body(node: Node) -> None:
        s = node.service
        for i in range(6):
            await s.put(b"k%d" % i, b"v")
            node.clock.advance_ms(10)
        assert await read(s.key_count()) <= 4
        assert await read(s.get_value(b"k5")) == b"v"  # the newest stays
    backend(body, Limits(policy=Policy.ALLKEYS_LRU, max_keys=4))
