import random

from raftkv.core.commands import Put
from raftkv.core.eviction import AccessTracker, Evictor, Limits, Policy
from raftkv.core.state_machine import StateMachine


def keyspace_of(n, ttl_every=0):
    sm = StateMachine()
    for i in range(n):
        deadline = 10_000 + i if ttl_every and i % ttl_every == 0 else None
        sm.apply(i + 1, Put(b"k%03d" % i, b"v" * 10, expires_at_ms=deadline))
    return sm.keyspace


def evictor(policy, **limits):
    rng = random.Random(7)
    tracker = AccessTracker(enabled=True, rng=rng)
    return Evictor(Limits(policy, **limits), tracker, rng), tracker


def test_noeviction_chooses_nothing_even_over_the_limit():
    ks = keyspace_of(20)
    ev, _ = evictor(Policy.NOEVICTION, max_keys=10)
    assert ev.excess(ks) == 10
    assert ev.choose(ks, 0, 10) == []


def test_lru_prefers_keys_not_touched_recently():
    ks = keyspace_of(100)
    ev, tracker = evictor(Policy.ALLKEYS_LRU, max_keys=50)
    for i in range(100):
        if i % 10:  # touch 90% of keys recently; k000, k010, ... stay cold
            tracker.touch(b"k%03d" % i, now_ms=1000)
    victims = ev.choose(ks, 1000, 5)
    assert len(set(victims)) == 5
    cold = sum(1 for k in victims if int(k[1:]) % 10 == 0)
    assert cold >= 3  # sampling is approximate, as in Redis, but strongly biased


def test_lfu_prefers_rarely_used_keys():
    ks = keyspace_of(60)
    ev, tracker = evictor(Policy.ALLKEYS_LFU, max_keys=30)
    for i in range(60):
        for _ in range(200 if i % 2 else 0):
            tracker.touch(b"k%03d" % i, now_ms=5)
    victims = ev.choose(ks, 5, 6)
    assert sum(1 for k in victims if int(k[1:]) % 2 == 0) >= 5


def test_volatile_ttl_takes_the_soonest_deadlines_and_only_volatile_keys():
    ks = keyspace_of(30, ttl_every=3)
    ev, _ = evictor(Policy.VOLATILE_TTL, max_keys=1)
    assert ev.choose(ks, 0, 3) == [b"k000", b"k003", b"k006"]
    ev, _ = evictor(Policy.VOLATILE_LRU, max_keys=1)
    assert all(int(k[1:]) % 3 == 0 for k in ev.choose(ks, 0, 5))


def test_memory_limit_converts_to_a_key_count():
    ks = keyspace_of(100)
    ev, _ = evictor(Policy.ALLKEYS_LRU, max_memory_bytes=50 * (4 + 10 + 150))
    assert 45 <= ev.excess(ks) <= 55
