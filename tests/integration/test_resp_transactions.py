"""MULTI / EXEC / DISCARD / WATCH: Redis's semantics reply for reply against redis-server, and
redis-py's pipelines - transactional (its default) and not - against a real node and
a three-node cluster, where EXEC is one replicated log entry."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from tests.integration.test_resp_server_commands import both
from tests.support.cluster import Cluster

SCRIPT = [
    ("EXEC",), ("DISCARD",),
    ("MULTI",), ("SET", "a", "1"), ("INCR", "a"), ("GET", "a"), ("INCRBY", "a", "10"),
    ("MGET", "a", "none"), ("EXISTS", "a", "none"), ("DEL", "none"), ("PING",), ("EXEC",),
    ("MULTI",), ("MULTI",), ("SET", "b", "x"), ("INCR", "b"), ("APPEND", "b", "y"),
    ("INCRBY", "b", "notanumber"), ("GET", "b"), ("EXEC",),
    ("MULTI",), ("SET", "c", "1"), ("NOSUCHCOMMAND",), ("GET", "c"), ("EXEC",), ("GET", "c"),
    ("MULTI",), ("SET", "c", "1"), ("GET",), ("EXEC",), ("EXISTS", "c"),
    ("MULTI",), ("SET", "d", "1"), ("DISCARD",), ("EXISTS", "d"), ("EXEC",),
    ("MULTI",), ("EXEC",),
    ("MULTI",), ("SETEX", "e", "100", "v"), ("TTL", "e"), ("GETDEL", "e"), ("TTL", "e"),
    ("SETNX", "f", "1"), ("SETNX", "f", "2"), ("GETSET", "f", "3"), ("STRLEN", "f"), ("EXEC",),
    ("MULTI",), ("SET", "g", "v"), ("RENAME", "g", "h"), ("GET", "h"), ("RENAME", "g", "i"),
    ("COPY", "h", "j"), ("GETRANGE", "j", "0", "0"), ("EXEC",),
]


def plain(reply: object) -> object:
    """A reply with the errors inside an EXEC array made comparable (redis-py returns
    them as exception objects)."""
    if isinstance(reply, list):
        return [plain(item) for item in reply]
    if isinstance(reply, redis.ResponseError):
        return ("error", str(reply))
    return reply


def test_multi_exec_discard_answer_as_redis_does(start_server, real_redis):
    node = start_server(resp=True)
    ours = redis.Redis(port=node.resp_port, protocol=2)
    try:
        for command in SCRIPT:
            a, b = both(ours, real_redis, *command)
            assert plain(a) == plain(b), command
    finally:
        ours.close()


def pipelines(r: redis.Redis) -> None:
    """What redis-py users write: a transactional pipeline (the default), then one
    with transaction=False; both see their own writes in order."""
    with r.pipeline() as pipe:
        pipe.set("counter", 0).incr("counter").incrby("counter", 41).get("counter")
        pipe.setex("session", 30, "data").ttl("session").delete("session").exists("session")
        assert pipe.execute() == [True, 1, 42, b"42", True, 30, 1, 0]
    with r.pipeline(transaction=False) as pipe:
        pipe.incr("counter").get("counter").mset({"x": 1, "y": 2}).mget("x", "y")
        assert pipe.execute() == [43, b"43", True, [b"1", b"2"]]
    with r.pipeline() as pipe:  # a runtime error is that command's alone
        pipe.set("word", "abc").incr("word").set("after", "ok")
        replies = pipe.execute(raise_on_error=False)
        assert replies[0] is True and isinstance(replies[1], redis.ResponseError)
        assert replies[2] is True and r.get("after") == b"ok"


def test_redis_py_pipelines_on_a_single_node(start_server):
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port)
    try:
        pipelines(r)
    finally:
        r.close()


def test_redis_py_pipelines_through_a_follower_and_the_leader_of_a_cluster(tmp_path):
    cluster = Cluster(tmp_path, 3, resp=True)
    try:
        cluster.start()
        leader = cluster.leader()
        follower = next(n for n in cluster.nodes if n != leader)
        for node_id in (follower, leader):
            r = redis.Redis(port=cluster.nodes[node_id].resp_port, socket_timeout=10)
            try:
                pipelines(r)
            finally:
                r.close()
        # every node applied the same transactions
        for node_id in cluster.nodes:
            r = redis.Redis(port=cluster.nodes[node_id].resp_port, socket_timeout=10)
            try:
                assert r.get("counter") == b"43" and r.get("after") == b"ok"
            finally:
                r.close()
    finally:
        cluster.stop()


WATCH_SCRIPT = [  # (which connection, command): "a" watches and runs EXEC, "b" meddles
    ("a", ("SET", "k", "1")), ("a", ("WATCH", "k")), ("b", ("SET", "k", "2")),
    ("a", ("MULTI",)), ("a", ("SET", "x", "1")), ("a", ("EXEC",)), ("a", ("GET", "x")),
    ("a", ("WATCH", "k")), ("a", ("MULTI",)), ("a", ("INCR", "k")), ("a", ("EXEC",)),
    ("a", ("WATCH", "absent")), ("b", ("SET", "absent", "1")), ("b", ("DEL", "absent")),
    ("a", ("MULTI",)), ("a", ("SET", "y", "1")), ("a", ("EXEC",)), ("a", ("EXISTS", "y")),
    ("a", ("WATCH", "k", "absent")), ("b", ("GET", "k")), ("a", ("MULTI",)),
    ("a", ("SET", "z", "1")), ("a", ("EXEC",)),
    ("a", ("WATCH", "k")), ("b", ("INCR", "k")), ("a", ("UNWATCH",)), ("a", ("MULTI",)),
    ("a", ("GET", "k")), ("a", ("EXEC",)),
    ("a", ("WATCH", "k")), ("a", ("MULTI",)), ("a", ("WATCH", "k")), ("a", ("EXEC",)),
    ("a", ("WATCH", "k")), ("b", ("SET", "k", "3")), ("a", ("MULTI",)), ("a", ("DISCARD",)),
    ("a", ("MULTI",)), ("a", ("GET", "k")), ("a", ("EXEC",)),
    ("a", ("WATCH",)),
    # typed keys: a change aborts, a command that changes nothing (SADD of a member the
    # set has, HDEL of an absent field) does not, as in Redis
    ("a", ("SADD", "ws", "m")), ("a", ("WATCH", "ws")), ("b", ("SADD", "ws", "m")),
    ("b", ("SREM", "ws", "absent")), ("a", ("MULTI",)), ("a", ("SET", "q", "1")),
    ("a", ("EXEC",)), ("a", ("WATCH", "ws")), ("b", ("SADD", "ws", "n")), ("a", ("MULTI",)),
    ("a", ("SET", "q", "2")), ("a", ("EXEC",)), ("a", ("HSET", "wh", "f", "v")),
    ("a", ("WATCH", "wh")), ("b", ("HDEL", "wh", "absent")), ("b", ("HGET", "wh", "f")),
    ("a", ("MULTI",)), ("a", ("HSET", "wh", "g", "w")), ("a", ("EXEC",)),
    ("a", ("WATCH", "wh")), ("b", ("HDEL", "wh", "f", "g")), ("a", ("MULTI",)),
    ("a", ("GET", "q")), ("a", ("EXEC",)), ("a", ("EXISTS", "wh")),
]


def test_watch_aborts_exec_when_a_watched_key_changed_as_redis_does(start_server, start_redis):
    node = start_server(resp=True)
    reference = start_redis()
    port = reference.connection_pool.connection_kwargs["port"]
    ours = {name: redis.Redis(port=node.resp_port, protocol=2) for name in "ab"}
    theirs = {name: redis.Redis(port=port, protocol=2) for name in "ab"}
    try:
        for who, command in WATCH_SCRIPT:
            a, b = both(ours[who], theirs[who], *command)
            assert plain(a) == plain(b), (who, command)
    finally:
        for client in (*ours.values(), *theirs.values()):
            client.close()


def test_a_watched_key_that_expires_aborts_exec(start_server):
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port)
    try:
        r.set("lease", "me", px=150)
        with r.pipeline() as pipe:
            pipe.watch("lease")
            time.sleep(0.3)  # it expires (collected or not) before EXEC
            pipe.multi()
            pipe.set("done", "1")
            with pytest.raises(redis.WatchError):
                pipe.execute()
        assert r.get("done") is None
    finally:
        r.close()


def test_redis_py_watch_retry_loops_count_every_increment_exactly_once(start_server):
    """The optimistic-locking loop of redis-py's documentation, from four threads at
    once: each increment retries until its EXEC was not spoiled by another's."""
    node = start_server(resp=True)
    threads, per_thread = 4, 40
    retries = []

    def work() -> None:
        r = redis.Redis(port=node.resp_port)
        spoiled = 0
        with r.pipeline() as pipe:
            for _ in range(per_thread):
                while True:
                    try:
                        pipe.watch("balance")
                        value = int(pipe.get("balance") or 0)
                        pipe.multi()
                        pipe.set("balance", value + 1)
                        pipe.execute()
                        break
                    except redis.WatchError:
                        spoiled += 1
        retries.append(spoiled)
        r.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    r = redis.Redis(port=node.resp_port)
    try:
        assert int(r.get("balance")) == threads * per_thread
        assert sum(retries) > 0  # they did collide, and WATCH caught it
    finally:
        r.close()
