"""The blocking pops against a real redis-server - their errors, what they answer when
there is something to pop, at their timeout and inside MULTI, the order in which
waiting clients are served, CLIENT UNBLOCK - and then as only raftkv runs them:
through a follower, woken by a write through another node, and across a leader kill."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.support.cluster import Cluster


def answer(client: redis.Redis, *command: object) -> object:
    try:
        return client.execute_command(*command)
    except redis.ResponseError as exc:
        return ("error", str(exc))



SCRIPT = [
    ("BLPOP", "q", "abc"), ("BLPOP", "q", "-1"), ("BLPOP", "q", "1e400"), ("BLPOP", "q", "nan"),
    ("BLPOP", "q", "inf"), ("BLMOVE", "a", "b", "UP", "LEFT", "0"), ("BLMPOP", "0", "0", "q", "LEFT"),
    ("BLMPOP", "0", "1", "q", "MIDDLE"), ("BLMPOP", "0", "1", "q", "LEFT", "COUNT", "0"),
    ("BLMPOP", "0", "2", "q", "LEFT"), ("BZMPOP", "0", "1", "z", "LEFT"),
    ("BZMPOP", "0", "1", "z", "MIN", "COUNT", "-1"), ("BLPOP", "q"),
    ("RPUSH", "q", "a", "b", "c"), ("RPUSH", "q2", "x"), ("BLPOP", "empty", "q", "q2", "0"),
    ("BRPOP", "q", "0"), ("BLMOVE", "q", "dst", "LEFT", "RIGHT", "0"),
    ("BRPOPLPUSH", "q2", "dst", "0"), ("LRANGE", "dst", "0", "-1"),
    ("RPUSH", "q", "1", "2", "3"), ("BLMPOP", "0", "2", "empty", "q", "RIGHT", "COUNT", "2"),
    ("ZADD", "z", "1", "a", "2", "b", "3", "c"), ("BZPOPMIN", "z", "0"), ("BZPOPMAX", "z", "0"),
    ("BZMPOP", "0", "1", "z", "MIN", "COUNT", "5"), ("SET", "s", "v"), ("BLPOP", "s", "0"),
    ("BLPOP", "empty", "s", "0"), ("BZPOPMIN", "s", "0"), ("BLMOVE", "s", "d", "LEFT", "LEFT", "0"),
    ("BLPOP", "empty", "0.05"), ("BRPOPLPUSH", "empty", "d", "0.05"),
    ("BZPOPMAX", "empty", "0.05"), ("BLMPOP", "0.05", "1", "empty", "LEFT"),
    ("BZMPOP", "0.05", "1", "empty", "MAX"),
]


def test_blocking_pops_answer_as_redis_does(pair):
    ours, theirs = pair
    for command in SCRIPT:
        assert answer(ours, *command) == answer(theirs, *command), command


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_waiting_client_is_served_and_a_timeout_is_a_nil(start_server, real_redis,
                                                             protocol):
    node = start_server(resp=True)
    their_port = real_redis.connection_pool.connection_kwargs["port"]
    for port in (node.resp_port, their_port):
        waiting = redis.Redis(port=port, protocol=protocol)
        pusher = redis.Redis(port=port, protocol=protocol)
        got: list[object] = []
        thread = threading.Thread(target=lambda got=got, waiting=waiting: got.append(
            waiting.execute_command("BLPOP", "jobs", "0")))
        thread.start()
        time.sleep(0.2)
        assert not got  # still waiting
        pusher.rpush("jobs", "j1")
        thread.join(5)
        assert [list(g) for g in got] == [[b"jobs", b"j1"]], port
        started = time.monotonic()
        assert waiting.execute_command("BZPOPMIN", "none", "0.2") is None
        assert 0.15 < time.monotonic() - started < 2
        waiting.close()
        pusher.close()


def served(port: int) -> dict[int, object]:
    """Three clients block on one list, one after another; what each gets from the
    pushes that follow."""
    pusher = redis.Redis(port=port)
    clients = [redis.Redis(port=port) for _ in range(3)]
    got: dict[int, object] = {}
    threads = []
    for i, c in enumerate(clients):
        thread = threading.Thread(target=lambda i=i, c=c: got.__setitem__(
            i, c.execute_command("BRPOP", "line", "0")))
        thread.start()
        threads.append(thread)
        time.sleep(0.1)  # (so they arrive in this order)
    pusher.rpush("line", "first")
    time.sleep(0.2)
    pusher.rpush("line", "second", "third")
    for thread in threads:
        thread.join(5)
    for c in [pusher, *clients]:
        c.close()
    return got


IN_ORDER = {0: (b"line", b"first"), 1: (b"line", b"third"), 2: (b"line", b"second")}


def test_waiting_clients_are_served_in_arrival_order_and_unblocked(start_server):
    node = start_server(resp=True)
    assert served(node.resp_port) == IN_ORDER
    pusher = redis.Redis(port=node.resp_port)
    clients = [redis.Redis(port=node.resp_port) for _ in range(4)]
    # CLIENT UNBLOCK: TIMEOUT answers a nil, ERROR an UNBLOCKED error
    blocked = clients[3]
    blocked_id = blocked.client_id()
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(answer(blocked, "BLPOP", "x", "0")))
    thread.start()
    time.sleep(0.2)
    assert pusher.execute_command("CLIENT", "UNBLOCK", blocked_id) == 1
    thread.join(5)
    assert outcome == [None]
    thread = threading.Thread(target=lambda: outcome.append(answer(blocked, "BLPOP", "x", "0")))
    thread.start()
    time.sleep(0.2)
    assert pusher.execute_command("CLIENT", "UNBLOCK", blocked_id, "ERROR") == 1
    thread.join(5)
    assert outcome[1] == ("error", "UNBLOCKED client unblocked via CLIENT UNBLOCK")
    assert pusher.execute_command("CLIENT", "UNBLOCK", blocked_id) == 0  # not blocked now
    # a blocked client that hangs up takes nothing with it
    gone = redis.Redis(port=node.resp_port, socket_timeout=0.2)
    with pytest.raises(redis.TimeoutError):
        gone.execute_command("BLPOP", "kept", "0")
    gone.close()
    time.sleep(0.2)
    pusher.rpush("kept", "v")
    time.sleep(0.3)
    assert pusher.lrange("kept", 0, -1) == [b"v"]
    # inside MULTI nothing blocks
    with pusher.pipeline() as pipe:
        pipe.blpop(["nothing"], 0).rpush("nothing", "n").blpop(["nothing"], 0)
        assert pipe.execute() == [None, 1, (b"nothing", b"n")]
    for c in [pusher, *clients]:
        c.close()


PLANTED = textwrap.dedent("""
    import raftkv.service.blocking as blocking

    def _wake_first(self, keys):  # planted: the newest waiter is served first
        for key in keys:
            queue = self._by_key.get(key)
            if not queue:
                continue
            waiter = queue[-1]
            if waiter.in_flight:
                waiter.dirty = True
            elif not waiter.stopping and any(self._ready(waiter, k) for k in waiter.keys):
                self._attempt(waiter)

    blocking.Waiters._wake_first = _wake_first
""")


def test_negative_control_the_order_check_catches_newest_first(start_planted):
    assert served(start_planted(PLANTED).resp_port) != IN_ORDER


def test_a_pop_blocked_on_a_follower_survives_a_leader_kill(tmp_path: Path):
    cluster = Cluster(tmp_path, 3, resp=True)
    try:
        cluster.start()
        leader = cluster.leader()
        follower, other = [n for n in cluster.nodes if n != leader]
        waiting = redis.Redis(port=cluster.nodes[follower].resp_port, socket_timeout=60)
        got: list[object] = []
        thread = threading.Thread(target=lambda: got.append(waiting.brpop(["work"], 0)))
        thread.start()
        time.sleep(0.3)
        cluster.nodes[leader].kill()
        new_leader = cluster.leader(exclude=leader)
        pusher = redis.Redis(port=cluster.nodes[other].resp_port, socket_timeout=20)
        assert pusher.lpush("work", "after-the-kill") == 1  # through the other node
        thread.join(20)
        assert got == [(b"work", b"after-the-kill")]
        assert pusher.llen("work") == 0
        assert new_leader != leader
        waiting.close()
        pusher.close()
    finally:
        cluster.stop()


def test_clients_of_every_node_are_served_in_arrival_order(tmp_path: Path):
    """The waiters are parked on the leader, so the order is the cluster's, not a
    node's: clients blocked one after another through a follower, the other follower
    and the leader get the elements of one RPUSH in that order. (Waiters parked on
    each client's own node fail it: the leader's own client, whose pop needs no hop,
    wins the first element.)"""
    cluster = Cluster(tmp_path, 3, resp=True)
    try:
        cluster.start()
        leader = cluster.leader()
        first, second = [n for n in cluster.nodes if n != leader]
        order = [first, second, leader, first, leader, second]
        clients = [redis.Redis(port=cluster.nodes[n].resp_port, socket_timeout=30)
                   for n in order]
        got: dict[int, object] = {}
        threads = []
        for i, client in enumerate(clients):
            thread = threading.Thread(
                target=lambda i=i, c=client: got.__setitem__(i, c.blpop(["fifo"], 0)))
            thread.start()
            threads.append(thread)
            time.sleep(0.3)
        pusher = redis.Redis(port=cluster.nodes[leader].resp_port, socket_timeout=20)
        assert pusher.rpush("fifo", *[f"e{i}" for i in range(len(clients))]) == len(clients)
        for thread in threads:
            thread.join(20)
        assert got == {i: (b"fifo", f"e{i}".encode()) for i in range(len(clients))}
        assert pusher.llen("fifo") == 0
        for client in [pusher, *clients]:
            client.close()
    finally:
        cluster.stop()


def test_stream_reads_block_until_an_entry_comes_as_in_redis(start_server, real_redis):
    node = start_server(resp=True)
    their_port = real_redis.connection_pool.connection_kwargs["port"]
    for port in (node.resp_port, their_port):
        reader = redis.Redis(port=port, protocol=2)
        writer = redis.Redis(port=port, protocol=2)
        writer.xadd("events", {"n": "0"}, id="1-1")
        writer.xgroup_create("events", "g", "$")
        got: list[object] = []

        def read(command: tuple, got: list[object] = got, reader: redis.Redis = reader) -> None:
            got.append(reader.execute_command(*command))
        waiting = [threading.Thread(target=read, args=(("XREAD", "BLOCK", "0", "STREAMS",
                                                         "events", "$"),)),
                   threading.Thread(target=read, args=(("XREADGROUP", "GROUP", "g", "c",
                                                         "BLOCK", "0", "STREAMS", "events",
                                                         ">"),))]
        for thread in waiting:
            thread.start()
            time.sleep(0.2)
        assert not got
        writer.xadd("events", {"n": "1"}, id="2-1")
        for thread in waiting:
            thread.join(5)
        entry = [b"events", [(b"2-1", {b"n": b"1"})]]
        assert [list(g) if isinstance(g, tuple) else g for g in got] == [[entry], [entry]], port
        assert writer.xpending("events", "g")["pending"] == 1  # XREADGROUP's delivery
        started = time.monotonic()
        assert reader.xread({"events": "$"}, block=150) == []  # a timeout: nil
        assert 0.1 < time.monotonic() - started < 2
        writer.delete("events")
        reader.close()
        writer.close()
