"""A Jepsen-style run: clients do read / write / compare-and-swap on a few keys through
random nodes while a nemesis kills (-9), pauses (SIGSTOP), and partitions nodes
(through per-link TCP proxies); every key's history must be linearizable (wgl.py).

HTTP outcomes map to the history as the contract says: 2xx and 412 happened; 503
(and a refused connection: nothing was sent) did not; 504, timeouts and dropped
connections are unknown. ``RAFTKV_JEPSEN_S`` lengthens the run (``make jepsen``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import Cluster, wait_for
from tests.support.cluster import proxied_cluster as running_proxied
from tests.support.wgl import Op, linearizable

KEYS = ("k0", "k1", "k2")
CLIENTS = 6
RUN_S = float(os.environ.get("RAFTKV_JEPSEN_S", "24"))
CLIENT_TIMEOUT_S = 2.5


@pytest.fixture
def proxied_cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_proxied(tmp_path) as cluster:
        yield cluster


class Client(threading.Thread):
    """One process of the history: ops one at a time, each with a unique value."""

    def __init__(self, number: int, cluster: Cluster, history: list[tuple[str, Op]],
                 stop: threading.Event, consistency: str = "linearizable") -> None:
        super().__init__(daemon=True)
        self.number = number
        self.cluster = cluster
        self.history = history
        self.stop_event = stop
        self.consistency = consistency
        self.rng = random.Random(number)
        self.known: dict[str, tuple[str, int]] = {}  # key -> (value, modRevision) seen
        self.counter = 0

    def run(self) -> None:
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
            while not self.stop_event.is_set():
                key = self.rng.choice(KEYS)
                node = self.rng.choice(list(self.cluster.nodes))
                url = f"{self.cluster.url(node)}/v1/keys/{key}"
                roll = self.rng.random()
                if roll < 0.5:
                    self._read(http, key, url)
                elif roll < 0.8 or key not in self.known:
                    self._write(http, key, url)
                else:
                    self._cas(http, key, url)

    def _record(self, key: str, op: Op, send: Callable[[], httpx.Response],
                on_ok: Callable[[httpx.Response], bool]) -> None:
        try:
            response = send()
        except httpx.ConnectError:
            op.outcome = "fail"  # nothing reached the node
        except httpx.HTTPError:
            op.outcome = "info"
        else:
            if response.status_code == 503:
                op.outcome = "fail"
            elif response.status_code == 504:
                op.outcome = "info"
            else:
                assert on_ok(response), f"unexpected {response.status_code}: {response.text}"
                op.ret = time.monotonic()
        self.history.append((key, op))
        if op.outcome == "info":
            time.sleep(0.05)

    def _unique(self) -> str:
        self.counter += 1
        return f"c{self.number}-{self.counter}"

    def _read(self, http: httpx.Client, key: str, url: str) -> None:
        op = Op(self.number, "read", None, time.monotonic())

        def ok(response: httpx.Response) -> bool:
            if response.status_code == 404:
                op.result = None
                return True
            body = response.json()
            op.result = body["value"]
            self.known[key] = (body["value"], body["modRevision"])
            return response.status_code == 200

        self._record(key, op, lambda: http.get(url, params={"consistency": self.consistency}),
                     ok)

    def _write(self, http: httpx.Client, key: str, url: str) -> None:
        value = self._unique()
        op = Op(self.number, "write", value, time.monotonic())

        def ok(response: httpx.Response) -> bool:
            self.known[key] = (value, response.json()["modRevision"])
            return response.status_code in (200, 201)

        self._record(key, op, lambda: http.put(url, json={"value": value}), ok)

    def _cas(self, http: httpx.Client, key: str, url: str) -> None:
        expected, revision = self.known[key]
        value = self._unique()
        op = Op(self.number, "cas", (expected, value), time.monotonic())

        def ok(response: httpx.Response) -> bool:
            op.result = response.status_code == 200
            if op.result:
                self.known[key] = (value, response.json()["modRevision"])
            return response.status_code in (200, 412)

        self._record(key, op, lambda: http.put(url, json={"value": value},
                                               headers={"If-Match": f'"{revision}"'}), ok)


def nemesis(cluster: Cluster, stop: threading.Event, rng: random.Random, log: list[str]) -> None:
    faults = ["kill", "pause", "isolate-leader", "isolate-follower"]
    while not stop.is_set():
        time.sleep(1.0)
        fault = faults[len(log) % len(faults)] if len(log) < len(faults) else rng.choice(faults)
        try:
            leader = cluster.leader(timeout_s=10)
        except AssertionError:
            log.append("no leader to aim at")
            continue
        victim = leader if fault in ("pause", "isolate-leader") or rng.random() < 0.5 \
            else rng.choice([n for n in cluster.nodes if n != leader])
        log.append(f"{fault} {victim}")
        node = cluster.nodes[victim]
        if fault == "kill":
            node.kill()
            time.sleep(rng.uniform(0.5, 2.0))
            node.start(wait=False)
        elif fault == "pause":
            node.signal(signal.SIGSTOP)
            time.sleep(rng.uniform(1.0, 2.5))
            node.signal(signal.SIGCONT)
        else:
            cluster.isolate(victim)
            time.sleep(rng.uniform(1.0, 3.0))
            cluster.heal()
        time.sleep(0.5)


def test_histories_stay_linearizable_under_kills_pauses_and_partitions(
        proxied_cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    cluster = proxied_cluster
    history: list[tuple[str, Op]] = []
    stop = threading.Event()
    clients = [Client(i, cluster, history, stop) for i in range(CLIENTS)]
    faults: list[str] = []
    chaos = threading.Thread(target=nemesis, args=(cluster, stop, random.Random(7), faults),
                             daemon=True)
    for thread in (*clients, chaos):
        thread.start()
    time.sleep(RUN_S)
    stop.set()
    for thread in (*clients, chaos):
        thread.join(30)
    cluster.heal()
    for node in cluster.nodes.values():
        if node.proc is None or node.proc.poll() is not None:
            node.start(wait=False)
    cluster.leader(timeout_s=20)
    final = Client(99, cluster, history, stop)  # one last read of each key
    with httpx.Client(timeout=10) as http:
        for key in KEYS:
            final._read(http, key, f"{cluster.url(cluster.leader())}/v1/keys/{key}")

    ok = [op for _, op in history if op.outcome == "ok"]
    assert len(ok) > 100, f"too little got through: {len(ok)} ok of {len(history)}"
    assert sum(1 for op in ok if op.kind != "read") > 30
    assert len(faults) >= 4, faults
    dump = Path(os.environ.get("RAFTKV_JEPSEN_DUMP", "/dev/null"))
    dump.write_text(json.dumps([[k, op.__dict__] for k, op in history], default=str))
    for key in KEYS:
        ops = [op for k, op in history if k == key]
        assert linearizable(ops), f"{key}: not linearizable; nemesis: {faults}"
    outcomes = Counter(f"{op.kind} {op.outcome}" for _, op in history)
    counts = ", ".join(f"{name} {n}" for name, n in sorted(outcomes.items()))
    with capsys.disabled():
        print(f"\njepsen: {len(history)} ops, linearizable ({counts}); "
              f"nemesis: {', '.join(faults)}")
    # Every replica converges on the same state.
    wait_for(lambda: len({str(sorted((i["key"], i["value"]) for i in httpx.get(
        f"{cluster.url(n)}/v1/keys?consistency=stale").json()["items"]))
        for n in cluster.nodes}) == 1, 20, "replicas to converge")


def _reads_from_a_paused_leader(cluster: Cluster, consistency: str) -> bool:
    """Isolate and pause the leader, write through its successor, then resume the old
    leader with reads waiting in its socket; is the history linearizable?"""
    old = cluster.leader()
    url = f"{cluster.url(old)}/v1/keys/x"
    before = httpx.get(url).json().get("value")
    cluster.isolate(old)
    cluster.nodes[old].signal(signal.SIGSTOP)
    new = wait_for(lambda: next((h["id"] for n, h in cluster.health().items()
                                 if n != old and h["state"] == "leader"), None),
                   15, "a new leader while the old one is paused")
    value = f"after-{consistency}"
    start = time.monotonic()
    written = httpx.put(f"{cluster.url(new)}/v1/keys/x", json={"value": value}, timeout=10)
    assert written.status_code == 200
    history = [Op(0, "write", before, 0.0, 0.0), Op(0, "write", value, start, time.monotonic())]

    def read() -> None:
        op = Op(1, "read", None, time.monotonic())
        response = httpx.get(url, params={"consistency": consistency}, timeout=10)
        op.ret, op.result = time.monotonic(), response.json().get("value")
        op.outcome = ("ok" if response.status_code == 200 else
                      "info" if response.status_code == 504 else "fail")
        history.append(op)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    time.sleep(0.3)  # the reads wait in the paused leader's socket
    cluster.nodes[old].signal(signal.SIGCONT)
    time.sleep(0.3)
    cluster.heal()
    for thread in readers:
        thread.join(15)
    return linearizable(history)


def test_negative_control_leader_reads_without_read_index_are_caught(
        proxied_cluster: Cluster) -> None:
    """A paused leader (also cut off, so it cannot hear of its successor at once),
    resumed, answers ``consistency=leader`` reads from its old state until check-quorum
    deposes it: the checker must call that history out, while the same scenario with
    ReadIndex (``linearizable``) stays linearizable."""
    cluster = proxied_cluster
    assert httpx.put(f"{cluster.url(cluster.leader())}/v1/keys/x",
                     json={"value": "before"}).status_code == 201
    assert _reads_from_a_paused_leader(cluster, "leader") is False
    assert _reads_from_a_paused_leader(cluster, "linearizable") is True
