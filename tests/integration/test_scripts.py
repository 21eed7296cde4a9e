"""Scripts as raftkv runs them, where no redis-server can be the reference: the
instruction budget (a runaway script fails the same way on every replica, pcall
cannot swallow it, and the node keeps serving), the entry's time and randomness,
and the same script applied on every member of a cluster."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import redis

from tests.support.cluster import Cluster, wait_for

RUNAWAY = """
redis.call('SET', KEYS[1], 'written before the loop')
local ok = pcall(function() while true do end end)
redis.call('SET', KEYS[1], 'never written')
"""


def test_a_runaway_script_stops_at_its_budget_and_the_node_goes_on(start_server):
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port, socket_timeout=30)
    try:
        other = redis.Redis(port=node.resp_port)
        try:
            r.eval(RUNAWAY, 1, "k")
            raise AssertionError("the runaway script returned")
        except redis.ResponseError as refused:
            assert "budget of 50000000 Lua instructions" in str(refused)
        assert r.get("k") == b"written before the loop"  # not rolled back, as in Redis
        assert other.ping() and r.incr("after") == 1
        # the same script's time and randomness are its entry's: TIME inside equals the
        # deadline SET PX derived from it, and two runs draw different numbers
        body = ("local t = redis.call('TIME') redis.call('SET', KEYS[1], 'x', 'PX', 100000) "
                "return {t[1], t[2], math.random(1000000000)}")
        first, second = r.eval(body, 1, "t"), r.eval(body, 1, "t")
        assert first[2] != second[2]
        assert abs(int(first[0]) - int(r.time()[0])) <= 2
        other.close()
    finally:
        r.close()


def test_every_replica_applies_the_same_script_the_same_way(tmp_path: Path):
    cluster = Cluster(tmp_path, 3, resp=True)
    try:
        cluster.start()
        leader = cluster.leader()
        follower = next(n for n in cluster.nodes if n != leader)
        r = redis.Redis(port=cluster.nodes[follower].resp_port, socket_timeout=30)
        body = ("for i = 1, 20 do redis.call('SET', KEYS[1] .. i, math.random(1000000)) end "
                "redis.call('SADD', KEYS[2], math.random(), math.random()) "
                "return redis.call('SPOP', KEYS[2])")
        sha = r.script_load(body)
        for _ in range(5):
            r.evalsha(sha, 2, "n:", "pool")
        with contextlib.suppress(redis.ResponseError):  # (over its budget)
            r.eval(RUNAWAY, 1, "runaway")
        expected = {f"n:{i}": r.get(f"n:{i}") for i in range(1, 21)} | {
            "runaway": r.get("runaway")}
        assert expected["runaway"] == b"written before the loop"

        def replica_holds(node_id: str) -> bool:
            url = cluster.url(node_id)
            for key, value in expected.items():
                got = httpx.get(f"{url}/v1/keys/{key}?consistency=stale", timeout=10)
                if got.status_code != 200 or got.json()["value"].encode() != value:
                    return False
            return True
        for node_id in cluster.nodes:
            wait_for(lambda n=node_id: replica_holds(n), 20, f"{node_id} to hold the same")
        reader = r.script_load("return redis.call('GET', KEYS[1])")
        for node_id in cluster.nodes:  # each member's own cache: a read runs it locally
            local = redis.Redis(port=cluster.nodes[node_id].resp_port)
            wait_for(lambda c=local: c.evalsha_ro(reader, 1, "n:7") == expected["n:7"], 20,
                     f"{node_id} to run the cached script as a read")
            local.close()
        r.close()
    finally:
        cluster.stop()
