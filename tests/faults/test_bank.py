"""The Jepsen-style bank (TESTING.md): money moves between accounts in transactions
while a nemesis kills (-9), pauses and partitions the nodes of a 3-node cluster; the
accounts are read together, atomically, through random nodes, and every read must sum
to the total. Half the clients move money over HTTP (``POST /v1/txn``: compares on
both accounts' mod revisions, then the two puts), half over the Redis protocol (WATCH,
GET, MULTI, SET, SET, EXEC); readers use one HTTP transaction of gets, or MULTI/GETs/
EXEC.

The negative control moves the money as two separate writes - a transfer split across
two log entries - and the same readers must catch a sum that is off.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.faults.test_cluster_linearizability import nemesis
from tests.support.cluster import Cluster, proxied_cluster

ACCOUNTS = [f"acct{i}" for i in range(5)]
START = 100
TOTAL = START * len(ACCOUNTS)
RUN_S = float(os.environ.get("RAFTKV_JEPSEN_S", "20"))
TIMEOUT_S = 2.5


@pytest.fixture
def bank_cluster(tmp_path: Path) -> Iterator[Cluster]:
    with proxied_cluster(tmp_path, resp=True) as cluster:
        url = cluster.url(cluster.leader())
        opened = httpx.post(url + "/v1/txn", json={"success": [
            {"op": "put", "key": a, "value": str(START)} for a in ACCOUNTS]}, timeout=10)
        assert opened.status_code == 200, opened.text
        yield cluster


class Teller(threading.Thread):
    """Transfers (``split``: as two separate writes, the negative control) or reads,
    through random nodes, over HTTP or RESP; counts what happened."""

    def __init__(self, number: int, cluster: Cluster, stop: threading.Event, front: str,
                 reader: bool, split: bool = False) -> None:
        super().__init__(daemon=True)
        self.cluster, self.stop_event, self.front = cluster, stop, front
        self.reader, self.split = reader, split
        self.rng = random.Random(number)
        self.counts: Counter[str] = Counter()
        self.bad_sums: list[int] = []

    def run(self) -> None:
        with httpx.Client(timeout=TIMEOUT_S) as http:
            while not self.stop_event.is_set():
                node = self.rng.choice(list(self.cluster.nodes))
                try:
                    if self.front == "http":
                        self._http(http, self.cluster.url(node))
                    else:
                        r = redis.Redis(port=self.cluster.nodes[node].resp_port,
                                        socket_timeout=TIMEOUT_S,
                                        socket_connect_timeout=TIMEOUT_S)
                        try:
                            self._resp(r)
                        finally:
                            r.close()
                except (httpx.HTTPError, redis.RedisError, OSError):
                    self.counts["unknown"] += 1
                    time.sleep(0.05)

    def _check(self, balances: list[int]) -> None:
        self.counts["reads"] += 1
        if sum(balances) != TOTAL:
            self.bad_sums.append(sum(balances))

    def _pair(self) -> tuple[str, str, int]:
        a, b = self.rng.sample(ACCOUNTS, 2)
        return a, b, self.rng.randint(1, 5)

    def _http(self, http: httpx.Client, url: str) -> None:
        if self.reader:
            done = http.post(url + "/v1/txn", json={"success": [
                {"op": "get", "key": a} for a in ACCOUNTS]})
            if done.status_code == 200:
                self._check([int(r["value"]) for r in done.json()["results"]])
            return
        source, target, amount = self._pair()
        got = http.post(url + "/v1/txn", json={"success": [
            {"op": "get", "key": source}, {"op": "get", "key": target}]})
        if got.status_code != 200:
            return
        (s, t) = got.json()["results"]
        if int(s["value"]) < amount:
            return
        puts = [{"op": "put", "key": source, "value": str(int(s["value"]) - amount)},
                {"op": "put", "key": target, "value": str(int(t["value"]) + amount)}]
        if self.split:  # the negative control: one entry per account
            for put in puts:
                http.post(url + "/v1/txn", json={"success": [put]})
            self.counts["transfers"] += 1
            return
        done = http.post(url + "/v1/txn", json={"compare": [
            {"key": source, "target": "modRevision", "op": "=", "value": s["modRevision"]},
            {"key": target, "target": "modRevision", "op": "=", "value": t["modRevision"]}],
            "success": puts})
        if done.status_code == 200:
            self.counts["transfers" if done.json()["succeeded"] else "conflicts"] += 1

    def _resp(self, r: redis.Redis) -> None:
        if self.reader:
            pipe = r.pipeline(transaction=True)
            for account in ACCOUNTS:
                pipe.get(account)
            self._check([int(v) for v in pipe.execute()])
            return
        source, target, amount = self._pair()
        if self.split:  # the negative control: one entry per account
            s, t = int(r.get(source)), int(r.get(target))
            if s >= amount:
                r.set(source, s - amount)
                r.set(target, t + amount)
                self.counts["transfers"] += 1
            return
        with r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(source, target)
                s, t = int(pipe.get(source)), int(pipe.get(target))
                if s < amount:
                    return
                pipe.multi()
                pipe.set(source, s - amount)
                pipe.set(target, t + amount)
                pipe.execute()
                self.counts["transfers"] += 1
            except redis.WatchError:
                self.counts["conflicts"] += 1


def run_bank(cluster: Cluster, seconds: float, faults: bool, split: bool = False
             ) -> tuple[list[Teller], list[str]]:
    stop = threading.Event()
    tellers = [Teller(i, cluster, stop, front, reader, split)
               for i, (front, reader) in enumerate([("http", False), ("resp", False),
                                                    ("http", False), ("resp", False),
                                                    ("http", True), ("resp", True)])]
    log: list[str] = []
    threads: list[threading.Thread] = list(tellers)
    if faults:
        threads.append(threading.Thread(target=nemesis, args=(cluster, stop,
                                                              random.Random(11), log),
                                        daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(30)
    return tellers, log


def final_sum(cluster: Cluster) -> int:
    cluster.heal()
    for node in cluster.nodes.values():
        if node.proc is None or node.proc.poll() is not None:
            node.start(wait=False)
    done = httpx.post(cluster.url(cluster.leader(timeout_s=20)) + "/v1/txn", json={
        "success": [{"op": "get", "key": a} for a in ACCOUNTS]}, timeout=10)
    return sum(int(r["value"]) for r in done.json()["results"])


def test_every_read_of_the_bank_sums_to_the_total_under_faults(
        bank_cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    tellers, faults = run_bank(bank_cluster, RUN_S, faults=True)
    counts = sum((t.counts for t in tellers), Counter())
    bad = [s for t in tellers for s in t.bad_sums]
    with capsys.disabled():
        print(f"\nbank: {dict(counts)}; wrong sums {len(bad)}; nemesis: {', '.join(faults)}")
    assert not bad, f"reads that did not sum to {TOTAL}: {bad[:10]}"
    assert counts["reads"] > 50 and counts["transfers"] > 30, counts
    for front in ("http", "resp"):
        assert sum(t.counts["transfers"] for t in tellers if t.front == front), front
    assert len(faults) >= 3, faults
    assert final_sum(bank_cluster) == TOTAL


def test_negative_control_transfers_split_across_two_entries_are_caught(
        bank_cluster: Cluster) -> None:
    tellers, _ = run_bank(bank_cluster, 6, faults=False, split=True)
    assert any(t.bad_sums for t in tellers if t.reader)
