"""The Jepsen-style **lock** and **watch** workloads (TESTING.md) on a 3-node cluster
while a nemesis kills (-9), pauses and partitions the nodes.

Lock: contenders take one lock through random nodes (a 1.5 s lease each), and write a
shared key under the lock's fencing token (a transaction whose compare is "the lock's
key still has my token as its create revision"); some stall past their lease first,
as a paused client does. In revision order, the acknowledged fenced writes must carry
tokens that never go down: once a newer holder wrote, no older one ever does again
(no two holders at once, as far as the data can tell). The negative control takes the
lease id as the token and shows the check catches it.

Watch: writers put unique values through random nodes; watchers follow the prefix
through random nodes, reconnecting with Last-Event-ID whenever their stream breaks.
Every acknowledged write must be seen by every watcher exactly once, in revision
order, and nothing that was never written may appear. The negative control shows
the check catches a stream that served an entry a follower had only received (later
overwritten by a new leader) and one that skipped a revision on resume.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from raftkv.core.commands import Compare, LeaseGrant, Put, Read, Relation, Target, Txn
from raftkv.core.state_machine import StateMachine
from tests.faults.test_cluster_linearizability import nemesis
from tests.support.cluster import Cluster, proxied_cluster
from tests.support.sse import EventStream

RUN_S = float(os.environ.get("RAFTKV_JEPSEN_S", "8"))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with proxied_cluster(tmp_path) as started:
        yield started


def run_with_nemesis(cluster: Cluster, threads: list[threading.Thread],
                     stop: threading.Event, seed: int,
                     followers: tuple[threading.Thread, ...] = ()) -> list[str]:
    """Run ``threads`` (which end at ``stop``) and ``followers`` (which go on after it)
    under the nemesis for RUN_S, then heal the cluster."""
    faults: list[str] = []
    chaos = threading.Thread(target=nemesis, args=(cluster, stop, random.Random(seed), faults),
                             daemon=True)
    for thread in (*threads, *followers, chaos):
        thread.start()
    time.sleep(RUN_S)
    stop.set()
    for thread in (*threads, chaos):
        thread.join(40)
    cluster.heal()
    for node in cluster.nodes.values():
        if node.proc is None or node.proc.poll() is not None:
            node.start(wait=False)
    cluster.leader(timeout_s=20)
    return faults


# --- lock ------------------------------------------------------------------------------

def fence_violations(writes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Acknowledged fenced writes (revision, token) whose token is below one already
    written at an earlier revision: a holder that wrote after a newer one had."""
    highest, bad = 0, []
    for revision, token in sorted(writes):
        if token < highest:
            bad.append((revision, token))
        highest = max(highest, token)
    return bad


class Contender(threading.Thread):
    def __init__(self, number: int, cluster: Cluster, stop: threading.Event,
                 writes: list[tuple[int, int]]) -> None:
        super().__init__(daemon=True)
        self.number, self.cluster, self.stop_event, self.writes = number, cluster, stop, writes
        self.rng = random.Random(number)
        self.held = 0
        self.fenced_off = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            url = self.cluster.url(self.rng.choice(list(self.cluster.nodes)))
            try:
                r = httpx.post(f"{url}/v1/locks/shared", params={"ttlMs": 1500, "waitMs": 3000},
                               timeout=8)
                if r.status_code != 200:
                    time.sleep(0.1)
                    continue
                holder = r.json()
                self.held += 1
                if self.rng.random() < 0.2:
                    time.sleep(2.0)  # stalled past its lease, as a paused client is
                for _ in range(3):
                    self.fenced_write(url, holder)
                httpx.delete(f"{url}/v1/locks/shared", params={
                    "lease": holder["lease"], "token": holder["token"]}, timeout=5)
            except httpx.HTTPError:
                time.sleep(0.1)

    def fenced_write(self, url: str, holder: dict) -> None:
        r = httpx.post(f"{url}/v1/txn", timeout=5, json={
            "compare": [{"key": holder["key"], "target": "createRevision", "op": "=",
                         "value": holder["token"]}],
            "success": [{"op": "put", "key": "resource", "value": str(holder["token"])}]})
        if r.status_code == 200:
            body = r.json()
            if body["succeeded"]:
                self.writes.append((body["revision"], holder["token"]))
            else:
                self.fenced_off += 1


def test_fencing_tokens_only_grow_under_faults(cluster: Cluster,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    stop = threading.Event()
    writes: list[tuple[int, int]] = []
    contenders = [Contender(i, cluster, stop, writes) for i in range(4)]
    faults = run_with_nemesis(cluster, list(contenders), stop, seed=11)
    bad = fence_violations(writes)
    held = sum(c.held for c in contenders)
    fenced = sum(c.fenced_off for c in contenders)
    with capsys.disabled():
        print(f"\nlock: held {held} times, fenced writes {len(writes)} "
              f"({len(set(t for _, t in writes))} tokens), stale writes refused {fenced}, "
              f"violations {len(bad)}; nemesis: {', '.join(faults)}")
    assert not bad, bad[:10]
    assert held >= 10 and len(writes) >= 20 and fenced >= 1
    assert len(faults) >= 3, faults


def test_negative_control_a_token_taken_from_the_lease_id_goes_down() -> None:
    """Two contenders: A is granted its lease first, B queues first. By create revision
    the tokens grow in the order they held the lock; by lease id they do not."""
    sm = StateMachine()
    lease_a = sm.apply(1, LeaseGrant(0, 10_000)).affected
    lease_b = sm.apply(2, LeaseGrant(0, 10_000)).affected
    tokens: dict[str, dict[str, int]] = {}
    for index, (who, lease) in enumerate((("b", lease_b), ("a", lease_a)), start=3):
        key = b"_raftkv/locks/l/%x" % lease
        result = sm.apply(index, Txn((Put(key, b"", lease=lease),),
                                     compares=(Compare(key, Target.CREATE_REVISION,
                                                       Relation.EQUAL, 0),),
                                     failure=(Read(key),), atomic=True))
        created = result.results[0].entry.create_revision
        tokens[who] = {"create revision": created, "lease id": lease}
    # b held first and wrote at revision 10, a after it at revision 11
    for scheme, expect_bad in (("create revision", False), ("lease id", True)):
        writes = [(10, tokens["b"][scheme]), (11, tokens["a"][scheme])]
        assert bool(fence_violations(writes)) is expect_bad, scheme


# --- watch -----------------------------------------------------------------------------

def watch_problems(acked: dict[int, str], seen: list[tuple[int, str]], since: int,
                   until: int) -> dict[str, list]:
    """Compare what a watcher saw with the acknowledged writes of revisions in
    (since, until]: gaps, repeats, order, and strangers (never written)."""
    revisions = [revision for revision, _ in seen]
    expected = {r: v for r, v in acked.items() if since < r <= until}
    got = dict(seen)
    return {
        "gaps": sorted(set(expected) - set(got)),
        "repeats": sorted({r for r in revisions if revisions.count(r) > 1}),
        "out of order": [b for a, b in itertools.pairwise(revisions) if b < a],
        "wrong value": sorted(r for r in expected if r in got and got[r] != expected[r]),
        "strangers": sorted(r for r in got if r not in acked and r <= until),
    }


class Writer(threading.Thread):
    def __init__(self, number: int, cluster: Cluster, stop: threading.Event,
                 acked: dict[int, str], unknown: set[str]) -> None:
        super().__init__(daemon=True)
        self.number, self.cluster, self.stop_event = number, cluster, stop
        self.acked, self.unknown = acked, unknown
        self.rng = random.Random(100 + number)

    def run(self) -> None:
        sent = 0
        while not self.stop_event.is_set():
            value = f"w{self.number}-{sent}"
            sent += 1
            url = self.cluster.url(self.rng.choice(list(self.cluster.nodes)))
            try:
                r = httpx.put(f"{url}/v1/keys/watched/{self.number}", json={"value": value},
                              timeout=5)
                if r.status_code in (200, 201):
                    self.acked[r.json()["modRevision"]] = value
                else:
                    self.unknown.add(value)
            except httpx.HTTPError:
                self.unknown.add(value)
            time.sleep(0.02)


class Watcher(threading.Thread):
    """Follows ``watched/`` from revision 1 through random nodes, resuming after the
    last revision it saw whenever the stream breaks."""

    def __init__(self, number: int, cluster: Cluster, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.number, self.cluster, self.stop_event = number, cluster, stop
        self.rng = random.Random(200 + number)
        self.seen: list[tuple[int, str]] = []
        self.last = 0
        self.resumes = 0
        self.target = 0  # after stop: follow until this revision

    def run(self) -> None:
        while not self.stop_event.is_set() or self.last < self.target or not self.target:
            if self.stop_event.is_set() and not self.target:
                time.sleep(0.05)
                continue
            url = self.cluster.url(self.rng.choice(list(self.cluster.nodes)))
            with contextlib.suppress(OSError, TimeoutError):
                self.follow(url)
            self.resumes += 1
            time.sleep(0.05)

    def follow(self, url: str) -> None:
        with EventStream(f"{url}/v1/watch?prefix=watched/&progressMs=500",
                         headers={"Last-Event-ID": str(self.last)}) as stream:
            if stream.status != 200:
                return
            limit = time.monotonic() + self.rng.uniform(1, 4)  # and reconnect at times
            while time.monotonic() < limit or self.stop_event.is_set():
                if self.target and self.last >= self.target:
                    return
                try:
                    event = stream.next(2)
                except TimeoutError:
                    if stream.ended.is_set():
                        return
                    continue
                if event.name in ("put",):
                    self.seen.append((event.id, event.data["value"]))
                if event.id is not None:
                    self.last = max(self.last, event.id)
                if event.name in ("cut", "compacted"):
                    raise AssertionError(f"watch ended: {event}")


def test_every_acknowledged_write_is_seen_once_in_order_across_resumes(
        cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    stop = threading.Event()
    acked: dict[int, str] = {}
    unknown: set[str] = set()
    writers = [Writer(i, cluster, stop, acked, unknown) for i in range(3)]
    watchers = [Watcher(i, cluster, stop) for i in range(3)]
    faults = run_with_nemesis(cluster, list(writers), stop, seed=13, followers=tuple(watchers))
    leader = cluster.leader(timeout_s=20)
    final = httpx.post(f"{cluster.url(leader)}/v1/txn", json={"success": []},
                       timeout=10).json()["revision"]
    caught_up = time.monotonic()
    for watcher in watchers:
        watcher.target = final
    for watcher in watchers:
        watcher.join(60)
    caught_up_s = time.monotonic() - caught_up
    totals = {"gaps": 0, "repeats": 0, "out of order": 0, "wrong value": 0, "strangers": 0}
    for watcher in watchers:
        assert watcher.last >= final, f"watcher {watcher.number} stopped at {watcher.last}"
        problems = watch_problems(acked, watcher.seen, 0, final)
        # a write whose answer was lost may still have happened: not a stranger
        problems["strangers"] = [r for r in problems["strangers"]
                                 if dict(watcher.seen)[r] not in unknown]
        for name, found in problems.items():
            totals[name] += len(found)
            assert not found, (watcher.number, name, found[:10])
    with capsys.disabled():
        print(f"\nwatch: {len(acked)} writes acknowledged (+{len(unknown)} unknown), "
              f"{len(watchers)} watchers, {sum(w.resumes for w in watchers)} resumes, "
              f"events seen {sum(len(w.seen) for w in watchers)}, problems {totals}, caught "
              f"up in {caught_up_s:.1f} s; "
              f"nemesis: {', '.join(faults)}")
    assert len(acked) >= 100
    assert len(faults) >= 3, faults


def test_negative_control_the_watch_check_catches_a_phantom_and_a_skipped_revision() -> None:
    acked = {3: "a", 4: "b", 6: "c"}
    honest = [(3, "a"), (4, "b"), (6, "c")]
    assert not any(watch_problems(acked, honest, 0, 6).values())
    # a follower streamed index 5 from its log before it was committed; the new leader
    # overwrote it, so nothing was ever written at 5 and 6 is another write
    phantom = [(3, "a"), (4, "b"), (5, "lost"), (6, "c")]
    assert watch_problems(acked, phantom, 0, 6)["strangers"] == [5]
    skipped = [(3, "a"), (6, "c")]  # resumed after 4 as if it were 5
    assert watch_problems(acked, skipped, 0, 6)["gaps"] == [4]
    repeated = [(3, "a"), (4, "b"), (4, "b"), (6, "c")]
    assert watch_problems(acked, repeated, 0, 6)["repeats"] == [4]
