"""etcd's v3 JSON gateway on raftkv, held to a real etcd's answers: every call of
``tests/support/etcd_cases.py`` replayed against a fresh node and compared field by
field with ``tests/fixtures/etcd-gateway/etcd-3.4.json`` (recorded from etcd 3.4),
after ``normalized`` has set aside what differs between two stores by nature (ids,
terms, revisions). Then etcd3gw, OpenStack's client for the gateway, drives
put/get/delete/txn/watch/lease/lock against raftkv as its users do."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support import etcd_cases
from tests.support.node import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "etcd-gateway" / "etcd-3.4.json"
# Where raftkv answers differently on purpose: etcd answers "election: no leader" with
# gRPC's Unknown, a 500; raftkv answers no 500 for a question it understood.
DIFFERENCES = {"election no leader": (404, {"code": 5, "error": "election: no leader",
                                            "message": "election: no leader"})}


def recorded() -> dict:
    return json.loads(Path(FIXTURE).read_text())


def test_every_call_answers_as_etcd_does(start_server):
    url = start_server().url
    ours = etcd_cases.record(url)
    theirs = recorded()
    assert ours["version"]["etcdserver"].startswith("3.")
    assert [c["name"] for c in ours["cases"]] == [c["name"] for c in theirs["cases"]]
    for mine, etcd in zip(ours["cases"], theirs["cases"], strict=True):
        expected = DIFFERENCES.get(mine["name"], (etcd["status"], etcd["body"]))
        assert (mine["status"], etcd_cases.normalized(mine["body"])) == \
            (expected[0], etcd_cases.normalized(expected[1])), mine["name"]
    assert etcd_cases.normalized(ours["watch"]) == etcd_cases.normalized(theirs["watch"])


def test_the_comparison_catches_a_missing_field_and_a_wrong_value():
    """Negative control: the normalization keeps what must match."""
    case = next(c for c in recorded()["cases"] if c["name"] == "range prefix limit")
    body = json.loads(json.dumps(case["body"]))
    del body["more"]
    assert etcd_cases.normalized(body) != etcd_cases.normalized(case["body"])
    body = json.loads(json.dumps(case["body"]))
    body["kvs"][0]["value"] = etcd_cases.b64("other")
    assert etcd_cases.normalized(body) != etcd_cases.normalized(case["body"])
    body = json.loads(json.dumps(case["body"]))
    body["kvs"][0]["mod_revision"] = 7  # an integer where etcd sends a string
    assert etcd_cases.normalized(body) != etcd_cases.normalized(case["body"])


@pytest.fixture(params=["single-node", "cluster-follower"])
def gateway(request: pytest.FixtureRequest, start_server, tmp_path):
    """A node to point etcd3gw at: a single node, or a follower of a 3-node cluster."""
    from tests.support.cluster import Cluster

    if request.param == "single-node":
        yield start_server().url
        return
    cluster = Cluster(tmp_path, 3)
    try:
        cluster.start()
        yield cluster.url(cluster.followers()[0])
    finally:
        cluster.stop()


def test_etcd3gw_puts_gets_deletes_transacts_watches_leases_and_locks(gateway):
    import etcd3gw

    port = int(gateway.rsplit(":", 1)[1])
    client = etcd3gw.client(host="127.0.0.1", port=port, timeout=10)
    assert client.put("app/a", "1") and client.get("app/a") == [b"1"]
    assert client.create("app/b", "2") is True and client.create("app/b", "3") is False
    assert client.replace("app/b", "2", "3") is True and client.replace("app/b", "2", "4") is False
    assert sorted(v for v, _ in client.get_prefix("app/")) == [b"1", b"3"]
    assert client.delete("app/a") is True and client.get("app/a") == []
    assert client.delete("app/a") is False
    assert client.status()["version"] and client.members()[0]["clientURLs"]

    events, cancel = client.watch_prefix("jobs/")
    seen: list[tuple[str, bytes]] = []

    def follow() -> None:
        for event in events:
            seen.append((event.get("type", "PUT"), event["kv"]["key"]))
            if len(seen) == 3:
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    time.sleep(0.5)
    client.put("jobs/1", "x")
    client.put("other", "x")
    client.put("jobs/2", "y")
    client.delete("jobs/1")
    reader.join(10)
    cancel()
    assert seen == [("PUT", b"jobs/1"), ("PUT", b"jobs/2"), ("DELETE", b"jobs/1")]

    lease = client.lease(ttl=2)
    client.put("session", "alive", lease=lease)
    assert lease.keys() == [b"session"] and 0 < lease.ttl() <= 2
    for _ in range(4):  # 3 s: kept alive past its TTL
        time.sleep(0.75)
        assert lease.refresh() > 0
    assert client.get("session") == [b"alive"]
    assert lease.revoke() and client.get("session") == []

    lock = client.lock("deploy", ttl=5)
    other = client.lock("deploy", ttl=5)
    assert lock.acquire() is True and other.acquire() is False
    assert lock.is_acquired() and lock.refresh() > 0
    assert lock.release() is True and other.acquire() is True
    assert other.release() is True


def test_the_gateway_refuses_what_it_cannot_serve_with_etcds_error_shape(start_server):
    url = start_server().url
    b64 = etcd_cases.b64
    cases = [
        ("kv/txn", {"compare": [{"key": b64("k"), "target": "LEASE", "lease": 1}]}, 400),
        ("kv/txn", {"success": [{"request_range": {"key": b64("a"), "range_end": b64("b")}}]},
         400),
        ("kv/range", {"key": b64("k"), "revision": 1}, 400),  # (one version per key)
        ("kv/range", {"key": b64("k"), "sort_order": "SIDEWAYS"}, 400),
        ("watch", {"cancel_request": {"watch_id": 1}}, 400),
        ("lease/grant", {"TTL": 0}, 400),
    ]
    httpx.post(f"{url}/v3/kv/put", json={"key": b64("k"), "value": b64("v")}, timeout=5)
    httpx.post(f"{url}/v3/kv/put", json={"key": b64("k"), "value": b64("w")}, timeout=5)
    for path, body, status in cases:
        r = httpx.post(f"{url}/v3/{path}", json=body, timeout=5)
        assert r.status_code == status, (path, body, r.text)
        error = r.json()
        assert set(error) == {"error", "message", "code"} and error["error"], error
    bad = httpx.post(f"{url}/v3/kv/put", content=b"nonsense", timeout=5)
    assert bad.status_code == 400 and bad.json()["code"] == 3
