"""The Jepsen-style queue (TESTING.md): producers push unique items with LPUSH and
consumers take them with BRPOP, each through a random node of a 3-node cluster, while
a nemesis kills (-9), pauses and partitions the nodes. At the end the queue is
drained and every acknowledged push is accounted for: popped exactly once, or still
queued.

What may go missing is bounded by what no client can know: a pop whose consumer's
connection died while it waited (its node was killed or cut off) may have taken an
item the consumer never saw - the same at-most-once window as Redis's own. Every
other acknowledged item must come out, and none twice.

The negative control applies the same pop twice, as a retried delivery does - once
with its request id, once without - and only the one without takes two items.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from raftkv.core.commands import TypedOp
from raftkv.core.state_machine import StateMachine
from tests.faults.test_cluster_linearizability import nemesis
from tests.support.cluster import Cluster, proxied_cluster

RUN_S = float(os.environ.get("RAFTKV_JEPSEN_S", "20"))
QUEUE = "jobs"


@pytest.fixture
def queue_cluster(tmp_path: Path) -> Iterator[Cluster]:
    with proxied_cluster(tmp_path, resp=True) as cluster:
        yield cluster


class Worker(threading.Thread):
    """A producer (LPUSH of its own numbered items) or a consumer (BRPOP, 1 s)."""

    def __init__(self, number: int, cluster: Cluster, stop: threading.Event,
                 producer: bool) -> None:
        super().__init__(daemon=True)
        self.number, self.cluster, self.stop_event = number, cluster, stop
        self.producer = producer
        self.rng = random.Random(number)
        self.acked: list[bytes] = []
        self.unknown_pushes: list[bytes] = []
        self.popped: list[bytes] = []
        self.unknown_pops = 0

    def run(self) -> None:
        sent = 0
        while not self.stop_event.is_set():
            node = self.rng.choice(list(self.cluster.nodes))
            r = redis.Redis(port=self.cluster.nodes[node].resp_port, socket_timeout=5,
                            socket_connect_timeout=2,
                            retry=Retry(NoBackoff(), 0))  # (an error must be seen)
            try:
                for _ in range(20):
                    if self.stop_event.is_set():
                        break
                    if self.producer:
                        item = b"p%d-%d" % (self.number, sent)
                        sent += 1
                        try:
                            r.lpush(QUEUE, item)
                            self.acked.append(item)
                        except (redis.RedisError, OSError):
                            self.unknown_pushes.append(item)
                            raise
                        time.sleep(0.01)
                    else:
                        try:
                            got = r.brpop([QUEUE], 1)
                        except (redis.RedisError, OSError):
                            self.unknown_pops += 1
                            raise
                        if got is not None:
                            self.popped.append(got[1])
            except (redis.RedisError, OSError):
                time.sleep(0.1)
            finally:
                r.close()


def test_no_acknowledged_item_is_lost_or_popped_twice_under_faults(
        queue_cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    cluster = queue_cluster
    stop = threading.Event()
    workers = [Worker(i, cluster, stop, producer=i < 2) for i in range(5)]
    faults: list[str] = []
    chaos = threading.Thread(target=nemesis, args=(cluster, stop, random.Random(5), faults),
                             daemon=True)
    for thread in (*workers, chaos):
        thread.start()
    time.sleep(RUN_S)
    stop.set()
    for thread in (*workers, chaos):
        thread.join(30)
    cluster.heal()
    for node in cluster.nodes.values():
        if node.proc is None or node.proc.poll() is not None:
            node.start(wait=False)
    leader = cluster.leader(timeout_s=20)
    r = redis.Redis(port=cluster.nodes[leader].resp_port, socket_timeout=10)
    remaining = r.lrange(QUEUE, 0, -1)
    r.close()
    popped = Counter(item for w in workers for item in w.popped)
    acked = {item for w in workers for item in w.acked}
    unknown = {item for w in workers for item in w.unknown_pushes}
    unknown_pops = sum(w.unknown_pops for w in workers)
    twice = [item for item, n in popped.items() if n > 1]
    twice += [item for item in remaining if item in popped]
    missing = acked - set(popped) - set(remaining)
    strangers = (set(popped) | set(remaining)) - acked - unknown
    with capsys.disabled():
        print(f"\nqueue: pushed {len(acked)} (+{len(unknown)} unknown), popped "
              f"{sum(popped.values())}, left {len(remaining)}, missing {len(missing)} "
              f"(pops cut off while waiting: {unknown_pops}), twice {len(twice)}; "
              f"nemesis: {', '.join(faults)}")
    assert not twice, twice[:10]
    assert not strangers, list(strangers)[:10]
    assert len(missing) <= unknown_pops, sorted(missing)[:10]
    assert len(acked) > 100 and sum(popped.values()) > 50
    assert len(faults) >= 3, faults


def test_negative_control_a_pop_applied_without_its_request_id_takes_twice() -> None:
    taken = {}
    for request_id in (b"pop-1", b""):
        sm = StateMachine()
        sm.apply(1, TypedOp((b"rpush", b"q", b"a", b"b", b"c"), now_ms=1))
        pop = TypedOp((b"lmpop", b"1", b"q", b"RIGHT"), request_id, 2)
        first, again = sm.apply(2, pop), sm.apply(3, pop)  # delivered twice
        taken[request_id] = (first.reply, again.reply, sm.keyspace.container(b"q").nbytes
                             and len(sm.keyspace.container(b"q")))
    assert taken[b"pop-1"][:2] == ([b"q", [b"c"]], [b"q", [b"c"]]) and taken[b"pop-1"][2] == 2
    assert taken[b""][:2] == ([b"q", [b"c"]], [b"q", [b"b"]]) and taken[b""][2] == 1
