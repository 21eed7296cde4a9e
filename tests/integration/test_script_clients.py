"""The libraries that need Lua on the server, driven as their users drive them,
against a real node and through a follower of a three-node cluster: redis-py's
``Lock`` (acquire with SET NX PX; extend, reacquire and release are EVALSHA, with
SCRIPT LOAD on NOSCRIPT) and the ``limits`` package under Flask-Limiter and SlowAPI
(every strategy is a script). Then both with the cluster's leader killed mid-run:
no two holders of the lock ever overlap, and it keeps being handed out once a new
leader is elected; a limit counts the hits on both sides of the kill, once each."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest
import redis
from redis.exceptions import LockError, LockNotOwnedError

from tests.support.cluster import Cluster


@pytest.fixture
def resp_port(resp_endpoint: tuple[int, Cluster | None]) -> int:
    return resp_endpoint[0]


def test_redis_py_lock_acquires_extends_and_releases(resp_port: int) -> None:
    client = redis.Redis(port=resp_port)
    client.script_flush()  # (the first EVALSHA meets NOSCRIPT and loads its script)
    lock = client.lock("resource", timeout=5)
    assert lock.acquire(blocking=False)
    other = client.lock("resource", timeout=5)
    assert not other.acquire(blocking=False)  # held
    assert lock.owned() and lock.locked()
    assert lock.extend(10) and 10_000 < client.pttl("resource") <= 15_000
    assert lock.reacquire() and client.pttl("resource") <= 5_000
    other.local.token = b"a-stale-token"
    with pytest.raises(LockNotOwnedError):
        other.release()  # the release script compares tokens: not this one's
    assert client.exists("resource")
    lock.release()
    assert not client.exists("resource")
    with pytest.raises(LockError):
        lock.release()  # not held any more
    short = client.lock("short", timeout=0.3)  # a holder that stops renewing loses it
    assert short.acquire(blocking=False)
    time.sleep(0.6)
    assert client.lock("short", timeout=5).acquire(blocking=False)
    with pytest.raises(LockNotOwnedError):
        short.release()
    client.close()


def test_redis_py_lock_excludes_contending_threads(resp_port: int) -> None:
    client = redis.Redis(port=resp_port)
    client.set("counter", 0)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(15):
                with client.lock("mutex", timeout=10, blocking_timeout=30, sleep=0.005):
                    value = int(client.get("counter"))  # a read-modify-write the lock
                    time.sleep(0.001)                     # must make safe
                    client.set("counter", value + 1)
        except BaseException as failed:
            errors.append(failed)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert int(client.get("counter")) == 60  # no increment lost: no two holders at once
    client.close()


def test_limits_strategies_as_flask_limiter_uses_them(resp_port: int) -> None:
    from limits import parse
    from limits.storage import RedisStorage
    from limits.strategies import (
        FixedWindowRateLimiter,
        MovingWindowRateLimiter,
        SlidingWindowCounterRateLimiter,
    )

    storage = RedisStorage(f"redis://127.0.0.1:{resp_port}")
    assert storage.check()
    item = parse("5/2 second")
    for strategy in (FixedWindowRateLimiter, MovingWindowRateLimiter,
                     SlidingWindowCounterRateLimiter):
        limiter = strategy(storage)
        name = strategy.__name__
        assert [limiter.hit(item, "user", name) for _ in range(7)] == [True] * 5 + [False] * 2
        assert not limiter.test(item, "user", name)
        stats = limiter.get_window_stats(item, "user", name)
        assert stats.remaining == 0 and stats.reset_time > time.time() - 1
        assert limiter.hit(item, "other", name)  # another identity has its own window
        limiter.clear(item, "user", name)
        assert limiter.hit(item, "user", name), name
    assert storage.get_moving_window("none", 5, 2)[1] == 0
    storage.reset()  # the clear_keys script: KEYS, then DEL in batches
    assert storage.get(item.key_for("other", "FixedWindowRateLimiter")) == 0


def test_lock_holders_never_overlap_while_the_leader_is_killed(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3, resp=True)
    try:
        cluster.start()
        leader = cluster.leader()
        follower = next(n for n in cluster.nodes if n != leader)
        port = cluster.nodes[follower].resp_port
        sections: list[tuple[float, float, str]] = []  # (start, end, holder)
        failures: list[str] = []
        stop = threading.Event()

        def worker(name: str) -> None:
            client = redis.Redis(port=port, socket_timeout=10)
            while not stop.is_set():
                lock = client.lock("mutex", timeout=3, blocking_timeout=1, sleep=0.01)
                try:
                    if not lock.acquire():
                        continue
                    start = time.monotonic()
                    client.incr("sections")
                    time.sleep(0.005)
                    end = time.monotonic()
                    sections.append((start, end, name))
                    lock.release()
                except (redis.RedisError, OSError) as failed:
                    failures.append(f"{name}: {failed}")  # (during the election)
                    time.sleep(0.1)
            client.close()

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        before_kill = len(sections)
        cluster.nodes[leader].kill()
        killed_at = time.monotonic()
        cluster.leader(exclude=leader)
        time.sleep(6)  # (past the TTL of a lock whose release was lost in the kill)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert before_kill > 0
        after = [s for s in sections if s[0] > killed_at]
        assert after, f"no holder after the leader was killed ({failures[-3:]})"
        ordered = sorted(sections)
        for (_, end, first), (start, _, second) in itertools.pairwise(ordered):
            assert start >= end, f"{first} and {second} held the lock at once"
    finally:
        cluster.stop()


def test_a_limit_holds_across_a_leader_kill(tmp_path: Path) -> None:
    """The fixed-window counter through a follower: hits before and after the leader
    dies count in the same window (none lost, none twice)."""
    from limits import parse
    from limits.storage import RedisStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    cluster = Cluster(tmp_path, 3, resp=True)
    try:
        cluster.start()
        leader = cluster.leader()
        follower = next(n for n in cluster.nodes if n != leader)
        storage = RedisStorage(f"redis://127.0.0.1:{cluster.nodes[follower].resp_port}")
        item = parse("5/minute")
        limiters = [FixedWindowRateLimiter(storage), MovingWindowRateLimiter(storage)]
        before = [[limiter.hit(item, f"user{i}") for _ in range(3)]
                  for i, limiter in enumerate(limiters)]
        cluster.nodes[leader].kill()
        cluster.leader(exclude=leader)
        after = [[limiter.hit(item, f"user{i}") for _ in range(3)]
                 for i, limiter in enumerate(limiters)]
        for first, then in zip(before, after, strict=True):
            assert first + then == [True] * 5 + [False]
    finally:
        cluster.stop()
