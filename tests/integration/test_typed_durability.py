"""Hashes, lists, sets and sorted sets keep the promises strings keep: an acknowledged
write survives kill -9 (from the log, and from a snapshot plus the log after it); in a
cluster every command is forwarded from a follower, replicated, and lands identically
on every replica - including one that joins by installing a snapshot, and across a
leader killed mid-run."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
from pathlib import Path

import httpx
import redis

from tests.support.cluster import Cluster, wait_for
from tests.support.node import ROOT

# a script per write_mix seed: its body is loaded (SCRIPT LOAD) and it runs by SHA1
SCRIPT = ("-- seed %d\nredis.call('HINCRBY', KEYS[1], 'runs', 1) "
          "return redis.call('RPUSH', KEYS[2], ARGV[1])")
SHAS = [hashlib.sha1((SCRIPT % seed).encode()).hexdigest() for seed in range(1, 5)]


def dump(r: redis.Redis) -> dict[bytes, object]:
    """Every key's type, contents and whether it has a deadline; and which of the
    write_mix scripts the node's script cache holds (asked as a read, so the node
    answers from its own state)."""
    out: dict[bytes, object] = {
        b"(scripts)": (b"cache", [_cached(r, sha) for sha in SHAS], False)}
    for key in sorted(r.keys("*")):
        kind = r.type(key)
        content: object
        if kind == b"hash":
            content = r.hgetall(key)
        elif kind == b"list":
            content = r.lrange(key, 0, -1)
        elif kind == b"set":
            content = sorted(r.smembers(key))
        elif kind == b"zset":
            content = r.zrange(key, 0, -1, withscores=True)
        elif kind == b"stream":
            content = (r.xrange(key), r.execute_command("XINFO", "GROUPS", key),
                       r.xpending(key, "workers") if r.exists(key) else None)
        else:
            content = r.get(key)
        out[key] = (kind, content, r.ttl(key) > 0)
    return out


def _cached(r: redis.Redis, sha: str) -> bool:
    try:
        r.evalsha_ro(sha, 0)
    except redis.exceptions.NoScriptError:
        return False
    except redis.ResponseError:  # (held, and refused to run as a read: it writes)
        return True
    return True


def write_mix(r: redis.Redis, seed: int, count: int) -> None:
    """``count`` writes of every type over a few dozen keys, some with a deadline,
    and scripts among them."""
    rng = random.Random(seed)
    sha = r.script_load(SCRIPT % seed)
    r.xgroup_create("events", "workers", "0", mkstream=True) if not r.exists("events") \
        else None
    for i in range(count):
        if i % 40 == 0:
            r.evalsha(sha, 2, "h0", f"l{rng.randrange(12) // 4 * 4 + 1}", i)
        if i % 10 == 0:  # a stream with a consumer group reading and acknowledging
            r.xadd("events", {"n": i}, maxlen=30, approximate=False)
            got = r.xreadgroup("workers", f"w{i % 3}", {"events": ">"}, count=2)
            if got and i % 20 == 0:
                r.xack("events", "workers", got[0][1][0][0])
        n = rng.randrange(12)
        family = n % 4
        if family == 0:
            r.hset(f"h{n}", f"f{rng.randrange(20)}", i)
        elif family == 1:
            if rng.random() < 0.3:
                r.lpop(f"l{n}")
            else:
                r.rpush(f"l{n}", i, i + 1)
        elif family == 2:
            if rng.random() < 0.3:
                r.srem(f"s{n}", f"m{rng.randrange(10)}")
            else:
                r.sadd(f"s{n}", f"m{rng.randrange(10)}")
        else:
            r.zadd(f"z{n}", {f"m{rng.randrange(10)}": rng.randrange(100) / 4})
        if i % 50 == 0:
            r.expire(f"h{n}" if family == 0 else f"z{n}", 3600)
    r.lmove("l1", "l5", "LEFT", "RIGHT")
    r.sunionstore("s-all", ["s2", "s6", "s10"])
    r.zunionstore("z-all", ["z3", "z7", "z11"])


def test_typed_values_survive_kill9_from_the_log_and_from_a_snapshot(start_server):
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port)
    write_mix(r, 1, 400)
    before = dump(r)
    r.close()
    node.kill()
    node.start()
    r = redis.Redis(port=node.resp_port)
    assert dump(r) == before  # replayed from the log
    assert httpx.post(node.url + "/v1/admin/snapshot", timeout=30).status_code == 200
    write_mix(r, 2, 300)  # after the snapshot: in the log only
    before = dump(r)
    r.close()
    node.kill()
    node.start()
    r = redis.Redis(port=node.resp_port)
    try:
        assert dump(r) == before  # the snapshot, then the log after it
        assert any(kind == b"zset" for kind, _, _ in before.values())
    finally:
        r.close()


def test_typed_values_replicate_through_followers_snapshots_and_a_leader_kill(tmp_path: Path):
    cluster = Cluster(tmp_path, 3, resp=True)
    clients: list[redis.Redis] = []

    def client(node_id: str) -> redis.Redis:
        c = redis.Redis(port=cluster.nodes[node_id].resp_port, socket_timeout=15)
        clients.append(c)
        return c
    try:
        cluster.start()
        leader = cluster.leader()
        follower = next(n for n in cluster.nodes if n != leader)
        write_mix(client(follower), 3, 300)  # forwarded to the leader
        for node_id in cluster.nodes:
            url = cluster.url(node_id)
            assert httpx.post(url + "/v1/admin/snapshot", timeout=30).status_code == 200
        cluster.nodes[leader].kill()
        new_leader = cluster.leader(exclude=leader)
        write_mix(client(new_leader), 4, 200)
        cluster.nodes[leader].start()
        expected = dump(client(new_leader))
        for node_id in cluster.nodes:
            wait_for(lambda n=node_id: dump(client(n)) == expected, 20,
                     f"{node_id} to hold what the leader holds")
        # a new member gets it all by snapshot
        n4 = cluster.add_process("n4", ["n1", "n2", "n3"]).start(wait=False)
        urls = ",".join(cluster.url(n) for n in ("n1", "n2", "n3"))
        wait_for(lambda: _add("n4", urls), 20, "n4 to be added")
        n4.wait_ready(30)
        wait_for(lambda: dump(client("n4")) == expected, 30, "n4 to hold what the leader holds")
        assert list((n4.data_dir / "snapshots").glob("snap-*.snap"))  # caught up by snapshot
    finally:
        for c in clients:
            c.close()
        cluster.stop()


def _add(node_id: str, urls: str) -> bool:
    done = subprocess.run([sys.executable, "-m", "raftkv", "cluster", "add", node_id, "--url",
                           urls], capture_output=True, text=True, cwd=ROOT, timeout=60)
    return done.returncode == 0


def test_typed_keys_expire_are_evicted_and_notify_like_strings(start_server):
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port)
    sub = r.pubsub()
    try:
        r.config_set("notify-keyspace-events", "KEA")
        sub.psubscribe("__keyevent@0__:*")
        assert sub.get_message(timeout=2)["type"] == "psubscribe"
        r.hset("h", "f", "v")
        r.rpush("l", "a")
        r.lpop("l")  # empties the list: lpop, then del
        r.sadd("s", "m")
        r.zadd("z", {"m": 1})
        r.pexpire("h", 100)
        events: list[tuple[bytes, bytes]] = []
        wait_for(lambda: _drain(sub, events) and (b"expired", b"h") in events, 5,
                 "the hash to expire")
        assert r.type("h") == b"none" and r.exists("h") == 0
        for event in ((b"hset", b"h"), (b"rpush", b"l"), (b"lpop", b"l"), (b"del", b"l"),
                      (b"sadd", b"s"), (b"zadd", b"z"), (b"expire", b"h")):
            assert event in events, event
        # eviction: memory of containers counts, and typed keys are evicted like strings
        for i in range(300):
            r.hset(f"big{i}", mapping={f"f{j}": "x" * 50 for j in range(20)})
        used = int(r.info("memory")["used_memory"])
        r.config_set("maxmemory-policy", "allkeys-lru")
        r.config_set("maxmemory", str(used // 2))
        for i in range(50):
            r.hset(f"more{i}", mapping={f"f{j}": "x" * 50 for j in range(20)})
        assert int(r.info("memory")["used_memory"]) <= used // 2 + 100_000
        assert int(r.info("stats")["evicted_keys"]) > 0
        wait_for(lambda: _drain(sub, events) and any(e == b"evicted" for e, _ in events), 5,
                 "an evicted event")
    finally:
        sub.close()
        r.close()


def _drain(sub, events: list[tuple[bytes, bytes]]) -> bool:
    while (message := sub.get_message(timeout=0.1)) is not None:
        if message["type"] == "pmessage":
            events.append((message["channel"].split(b":", 1)[1], message["data"]))
    return True


def test_over_http_a_typed_key_is_listed_with_its_type_and_a_read_is_a_409(start_server):
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port)
    try:
        r.hset("profile", "name", "ada")
        r.set("plain", "v")
        for path in ("/v1/keys/profile", "/get?key=profile", "/kv/profile"):
            answer = httpx.get(node.url + path)
            assert answer.status_code == 409, path
            assert answer.json()["code"] == "wrong_type" and "hash" in answer.json()["message"]
        items = httpx.get(node.url + "/v1/keys").json()["items"]
        assert [(i["key"], i.get("type"), "value" in i) for i in items] == [
            ("plain", None, True), ("profile", "hash", False)]
        txn = httpx.post(node.url + "/v1/txn", json={"success": [
            {"op": "put", "key": "plain", "value": "w"}, {"op": "get", "key": "profile"}]})
        assert txn.status_code == 409 and r.get("plain") == b"v"  # undone with its get
        assert httpx.put(node.url + "/v1/keys/profile", json={"value": "s"}).status_code == 200
        assert r.type("profile") == b"string"  # a PUT replaces, as Redis's SET does
    finally:
        r.close()
