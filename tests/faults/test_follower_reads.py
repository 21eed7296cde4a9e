"""A follower cut off from its leader answers SCAN and KEYS as it answers GET: with
data at least as new as every acknowledged write, or an error - never an old state
(ARCHITECTURE.md rule 9: the fronts read through the service's read barrier)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.cluster import Cluster, wait_for
from tests.support.netproxy import ProxyNet


@pytest.fixture
def cut_off_follower(tmp_path: Path) -> Iterator[tuple[Cluster, str, str]]:
    proxies = ProxyNet()
    cluster = Cluster(tmp_path, 3, resp=True, proxies=proxies)
    try:
        cluster.start()
        leader = cluster.leader()
        follower = next(n for n in cluster.nodes if n != leader)
        yield cluster, leader, follower
    finally:
        cluster.stop()
        proxies.close()


def _answer(read: Callable[[], Any]) -> Any:
    """The read's answer, or the error it got (an error is a safe answer)."""
    try:
        return read()
    except (redis.ResponseError, redis.TimeoutError) as exc:
        return exc


@pytest.mark.timeout(120)
def test_scan_and_keys_on_a_cut_off_follower_never_miss_an_acknowledged_write(
        cut_off_follower: tuple[Cluster, str, str]) -> None:
    cluster, leader, follower = cut_off_follower
    on_leader = redis.Redis(port=cluster.nodes[leader].resp_port, socket_timeout=10)
    on_follower = redis.Redis(port=cluster.nodes[follower].resp_port, socket_timeout=30)
    on_leader.set("before", "1")
    wait_for(lambda: b"before" in on_follower.keys("*"), 10, "the follower to serve KEYS")
    assert on_follower.scan(0, count=100)[1] == [b"before"]

    cluster.isolate(follower)
    on_leader.set("after", "1")  # acknowledged: the leader and the third node have it
    started = time.monotonic()
    answers = {
        "KEYS": _answer(lambda: on_follower.keys("*")),
        "SCAN": _answer(lambda: on_follower.scan(0, count=100)[1]),
        "SCAN MATCH": _answer(lambda: on_follower.scan(0, match="a*", count=100)[1]),
        "GET": _answer(lambda: on_follower.get("after")),
    }
    for name, answer in answers.items():
        if isinstance(answer, Exception):
            continue  # refused or timed out: not a stale answer
        assert answer in ([b"after", b"before"], [b"after"], b"1"), \
            f"{name} on a cut-off follower answered {answer!r}, missing an acknowledged write"
    assert any(isinstance(a, Exception) for a in answers.values()), answers
    assert time.monotonic() - started < 100

    cluster.heal()
    wait_for(lambda: _answer(lambda: on_follower.keys("*")) == [b"after", b"before"], 30,
             "KEYS on the healed follower to see both writes")
