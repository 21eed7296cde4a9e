"""The reads the service offers every front: values of many keys, exists, and key
scans with a pattern and a cursor - each validating its keys, at the asked
consistency, and (except EXISTS, as in Redis) counted as an access for LRU/LFU."""

from __future__ import annotations

import asyncio

import pytest

from raftkv.clock import ManualClock
from raftkv.core.eviction import Limits, Policy
from raftkv.errors import InvalidArgument
from raftkv.replication.local import LocalReplicator
from raftkv.replication.replay import recover
from raftkv.service.service import KeyPage, KVService, ServiceLimits
from raftkv.storage.wal import FsyncPolicy
from tests.support.crashfs import CrashFS


def _run(body) -> None:
    async def go() -> None:
        fs = CrashFS()
        replicator = LocalReplicator(recover(fs, "/data"), FsyncPolicy.NO)
        clock = ManualClock()
        limits = ServiceLimits(eviction=Limits(policy=Policy.ALLKEYS_LRU, max_keys=1000))
        service = KVService(replicator, clock, limits)
        try:
            await body(service, clock)
        finally:
            await replicator.close()
    asyncio.run(go())


def test_values_of_many_keys_count_as_accesses_and_exists_does_not():
    async def body(service: KVService, clock: ManualClock) -> None:
        await service.multi_put([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
        clock.advance_ms(5_000)
        read_at_ms = clock.now_ms()
        assert service.get_values([b"a", b"missing", b"b"]) == [b"1", None, b"2"]
        clock.advance_ms(5_000)
        assert service.exists([b"c", b"c", b"missing"]) == 2  # a key named twice counts twice
        tracker = service.tracker
        assert tracker.last_access_ms(b"a") == tracker.last_access_ms(b"b") == read_at_ms
        assert tracker.last_access_ms(b"c") == 0  # EXISTS is not an access (Redis: NOTOUCH)
    _run(body)


@pytest.mark.parametrize("keys", [[b"ok", b""], [b"ok", b"k" * 1025]])
def test_reads_of_many_keys_validate_every_key(keys: list[bytes]):
    async def body(service: KVService, clock: ManualClock) -> None:
        with pytest.raises(InvalidArgument):
            service.get_values(keys)
        with pytest.raises(InvalidArgument):
            service.exists(keys)
    _run(body)


def test_a_scan_in_pages_returns_every_live_matching_key_once():
    async def body(service: KVService, clock: ManualClock) -> None:
        await service.multi_put([(b"user:%02d" % i, b"x") for i in range(25)] +
                                [(b"order:1", b"x"), (b"user:secret", b"x")])
        await service.put(b"user:gone", b"x", ttl_ms=10)
        clock.advance_ms(20)  # expired, not yet collected: never returned
        seen: list[bytes] = []
        after = None
        pages = 0
        while True:
            page = service.scan_keys(pattern=b"user:*", after=after, count=4,
                                     visible=lambda key: key != b"user:secret")
            assert isinstance(page, KeyPage)
            assert len(page.keys) <= 4
            seen += page.keys
            pages += 1
            if page.last is None:
                break
            after = page.last
        assert seen == [b"user:%02d" % i for i in range(25)]
        assert pages == 7  # 27 stored keys with the prefix, 4 examined per page
    _run(body)


def test_a_scan_without_count_reads_to_the_end():
    async def body(service: KVService, clock: ManualClock) -> None:
        await service.multi_put([(b"k%d" % i, b"x") for i in range(100)])
        page = service.scan_keys(pattern=b"k?")
        assert isinstance(page, KeyPage)
        assert page.keys == [b"k%d" % i for i in range(10)] and page.last is None
    _run(body)
