"""The libraries people put in front of Redis, driven as their users drive them,
against a real node and through a follower of a three-node cluster: cachelib's
RedisCache (Flask-Caching's backend), Django's built-in RedisCache, django-redis
(with its set and hash helpers), and kombu's Redis transport (Celery's broker) for
what needs no blocking pop: publishing, a non-blocking get, the unacked hash and
sorted set, acks."""

from __future__ import annotations

import pytest
import redis

from tests.support.cluster import Cluster


@pytest.fixture
def resp_port(resp_endpoint: tuple[int, Cluster | None]) -> int:
    return resp_endpoint[0]


def test_cachelib_redis_cache_as_flask_caching_uses_it(resp_port: int) -> None:
    from cachelib import RedisCache

    cache = RedisCache(port=resp_port, key_prefix="app:", default_timeout=300)
    assert cache.set("page", {"html": "<p>hi</p>"}) is True  # SETEX
    assert cache.get("page") == {"html": "<p>hi</p>"}
    assert cache.add("page", "other") is False and cache.add("fresh", 1) is True
    assert cache.has("fresh") and not cache.has("nope")
    assert cache.set_many({"a": 1, "b": [2, 3]}) == ["a", "b"]  # a MULTI/EXEC pipeline
    assert cache.get_many("a", "b", "nope") == [1, [2, 3], None]
    assert cache.inc("hits") == 1 and cache.inc("hits", 5) == 6 and cache.dec("hits") == 5
    assert cache.delete("a") is True and cache.get("a") is None
    assert cache.delete_many("b", "fresh") == ["b", "fresh"]
    assert cache.set("short", "x", timeout=1) and cache.get("short") == "x"
    assert cache.clear() is True  # KEYS app:* then DEL
    assert cache.get("page") is None and cache.get("hits") is None


def test_django_redis_cache_as_a_django_site_uses_it(resp_port: int) -> None:
    _django_settings()
    from django.core.cache.backends.redis import RedisCache

    cache = RedisCache(f"redis://127.0.0.1:{resp_port}/0", {"TIMEOUT": 300})
    cache.set("view:index", b"<html>")
    assert cache.get("view:index") == b"<html>"
    assert cache.add("view:index", "x") is False and cache.add("new", 1) is True
    cache.set_many({"k1": 1, "k2": "two"}, timeout=60)  # MSET + EXPIRE in MULTI/EXEC
    assert cache.get_many(["k1", "k2", "absent"]) == {"k1": 1, "k2": "two"}
    assert cache.incr("k1", 9) == 10 and cache.decr("k1", 3) == 7
    with pytest.raises(ValueError):
        cache.incr("absent")
    assert cache.touch("k2", 1000) is True and cache.touch("absent") is False
    assert cache.has_key("k2") and cache.get_or_set("lazy", lambda: "made") == "made"
    cache.delete_many(["k1", "k2"])
    assert cache.get("k1") is None
    cache.clear()  # FLUSHDB
    assert cache.get("view:index") is None and cache.get("lazy") is None


def _django_settings() -> None:
    from django.conf import settings

    if not settings.configured:
        settings.configure(USE_TZ=True)


def test_django_redis_as_a_django_site_uses_it(resp_port: int) -> None:
    _django_settings()
    from django_redis.cache import RedisCache

    cache = RedisCache(f"redis://127.0.0.1:{resp_port}/0", {
        "TIMEOUT": 300, "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"}})
    cache.set("page:1", {"title": "home"})
    assert cache.get("page:1") == {"title": "home"}
    assert cache.add("page:1", "x") is False and cache.add("page:2", "y") is True
    cache.set_many({"a": 1, "b": 2}, timeout=60)
    assert cache.get_many(["a", "b", "zz"]) == {"a": 1, "b": 2}
    assert 0 < cache.ttl("a") <= 60 and cache.persist("a") and cache.ttl("a") is None
    assert cache.expire("a", 100) and 90 < cache.ttl("a") <= 100
    assert cache.incr("a", 4) == 5 and cache.decr("a") == 4  # (EVAL, then its fallback)
    assert sorted(cache.keys("page:*")) == ["page:1", "page:2"]
    assert cache.delete_pattern("page:*") == 2 and cache.get("page:1") is None
    # its set and hash helpers
    assert cache.sadd("tags", "x", "y", "z") == 3 and cache.scard("tags") == 3
    assert cache.sismember("tags", "x") and cache.smembers("tags") == {"x", "y", "z"}
    assert cache.sadd("other", "y", "w") == 2 and cache.sinter("tags", "other") == {"y"}
    assert cache.srem("tags", "x") == 1 and cache.sunion("tags", "other") == {"y", "z", "w"}
    assert cache.hset("profile", "name", "ada") == 1 and cache.hlen("profile") == 1
    assert cache.hexists("profile", "name") and cache.hkeys("profile") == ["name"]
    assert cache.hdel("profile", "name") == 1 and not cache.hexists("profile", "name")
    cache.clear()
    assert cache.get("a") is None and cache.scard("tags") == 0


def test_kombu_redis_transport_publishes_gets_and_acks(resp_port: int) -> None:
    from kombu import Connection

    r = redis.Redis(port=resp_port, socket_timeout=10)
    try:
        with Connection(f"redis://127.0.0.1:{resp_port}/0") as conn:
            queue = conn.SimpleQueue("jobs")
            for n in range(5):
                queue.put({"n": n})
            assert queue.qsize() == 5 and r.llen("jobs") == 5  # LPUSH
            assert r.smembers("_kombu.binding.jobs")  # the binding: a set
            messages = [queue.get(block=False) for _ in range(5)]  # RPOP
            assert [m.payload["n"] for m in messages] == [0, 1, 2, 3, 4]
            assert r.hlen("unacked") == 5 and r.zcard("unacked_index") == 5
            for message in messages:
                message.ack()
            assert r.hlen("unacked") == 0 and r.zcard("unacked_index") == 0
            with pytest.raises(queue.Empty):
                queue.get(block=False)
            queue.close()
    finally:
        r.close()
