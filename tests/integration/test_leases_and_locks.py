"""Leases, locks and elections over HTTP against real nodes (DATA-MODEL.md section 6):
a lease holds its keys until revoked or run out and a keep-alive moves its deadline;
leases survive a restart; across a leader kill an expired lease's keys go within
TTL + an election timeout and a lease kept alive is never revoked early; locks queue
in order, fence with growing tokens, release idempotently and give up after
``waitMs``; elections campaign, proclaim, observe and resign."""

from __future__ import annotations

import concurrent.futures
import shutil
import time

import httpx
import pytest

from tests.support.cluster import Cluster, wait_for
from tests.support.node import ROOT, ServerProcess
from tests.support.sse import EventStream


def grant(url: str, ttl_ms: int, **body: object) -> int:
    r = httpx.post(f"{url}/v1/leases", json={"ttlMs": ttl_ms, **body}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def put(url: str, key: str, value: str, **params: object) -> httpx.Response:
    return httpx.put(f"{url}/v1/keys/{key}", json={"value": value}, params=params, timeout=10)


def lock(url: str, name: str, timeout_s: float = 30, **params: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/locks/{name}", params=params, timeout=timeout_s)


def test_a_lease_holds_its_keys_until_it_runs_out_and_keep_alives_move_its_deadline(
        start_server):
    url = start_server().url
    lease = grant(url, 1500)
    assert put(url, "svc/a", "1", lease=lease).status_code == 201
    assert put(url, "svc/b", "1", lease=lease).status_code == 201
    assert put(url, "svc/c", "1", lease=9999).status_code == 404  # no such lease: nothing put
    assert httpx.get(f"{url}/v1/keys/svc/c", timeout=5).status_code == 404
    info = httpx.get(f"{url}/v1/leases/{lease}", timeout=5).json()
    assert info["ttlMs"] == 1500 and 0 < info["remainingMs"] <= 1500
    assert info["keys"] == ["svc/a", "svc/b"]
    for _ in range(4):  # 2 s in all: past the first deadline, kept alive
        time.sleep(0.5)
        assert httpx.post(f"{url}/v1/leases/{lease}/keepalive", timeout=5).status_code == 200
    assert httpx.get(f"{url}/v1/keys/svc/a", timeout=5).status_code == 200
    started = time.monotonic()
    wait_for(lambda: httpx.get(f"{url}/v1/keys/svc/a", timeout=5).status_code == 404, 5,
             "the lease's keys to go")
    assert time.monotonic() - started < 1.5 + 0.5
    assert httpx.get(f"{url}/v1/keys/svc/b", timeout=5).status_code == 404
    assert httpx.post(f"{url}/v1/leases/{lease}/keepalive", timeout=5).status_code == 404
    assert httpx.get(f"{url}/v1/leases", timeout=5).json()["leases"] == []


def test_revoking_a_lease_deletes_its_keys_and_a_plain_put_takes_a_key_off_it(start_server):
    url = start_server().url
    lease = grant(url, 60_000, id=42)
    assert lease == 42
    again = httpx.post(f"{url}/v1/leases", json={"ttlMs": 1000, "id": 42}, timeout=5)
    assert again.status_code == 412
    put(url, "held", "1", lease=lease)
    put(url, "freed", "1", lease=lease)
    put(url, "freed", "2")  # no lease named: off the lease
    assert httpx.delete(f"{url}/v1/leases/{lease}", timeout=5).status_code == 204
    assert httpx.get(f"{url}/v1/keys/held", timeout=5).status_code == 404
    assert httpx.get(f"{url}/v1/keys/freed", timeout=5).json()["value"] == "2"
    assert httpx.delete(f"{url}/v1/leases/{lease}", timeout=5).status_code == 404


@pytest.mark.parametrize("body, status", [
    ({}, 400), ({"ttlMs": 0}, 400), ({"ttlMs": 999}, 400), ({"ttlMs": "5000"}, 400),
    ({"ttlMs": 5000, "x": 1}, 400),
])
def test_bad_lease_requests_are_refused_with_a_message(start_server, body, status):
    url = start_server().url
    r = httpx.post(f"{url}/v1/leases", json=body, timeout=5)
    assert r.status_code == status and r.json()["message"], r.text
    assert httpx.get(f"{url}/v1/leases/abc", timeout=5).status_code == 404


def test_leases_survive_a_restart_and_a_version_3_image_still_loads(tmp_path):
    """tests/fixtures/image-3 was written before leases; today's node serves it, and a
    lease granted now survives a snapshot and a restart with its deadline."""
    import redis

    data_dir = tmp_path / "node"
    shutil.copytree(ROOT / "tests" / "fixtures" / "image-3" / "single-node", data_dir)
    node = ServerProcess(data_dir, resp=True).start()
    r = redis.Redis(port=node.resp_port)
    try:
        assert sorted(r.keys("*")) == [b"after-snapshot", b"events", b"profile:1", b"queue"]
        assert r.lrange("queue", 0, -1) == [b"a", b"b", b"c", b"d"]
        assert r.evalsha("8c65b2bc1e1aa28b7e857a77051f1ccb4b611adb", 1, "queue") == 4
        lease = grant(node.url, 3_600_000)
        put(node.url, "on-lease", "v", lease=lease)
        assert httpx.post(node.url + "/v1/admin/snapshot", timeout=30).status_code == 200
        short = grant(node.url, 60_000)  # after the snapshot: from the log
        put(node.url, "on-short", "v", lease=short)
        node.stop()
        node.start()
        info = httpx.get(f"{node.url}/v1/leases/{lease}", timeout=5).json()
        assert info["keys"] == ["on-lease"] and info["remainingMs"] > 3_500_000
        assert httpx.get(f"{node.url}/v1/leases/{short}", timeout=5).json()["keys"] == \
            ["on-short"]
    finally:
        r.close()
        node.stop()


def test_contenders_get_the_lock_in_order_with_growing_tokens(start_server):
    url = start_server().url
    first = lock(url, "job", ttlMs=30_000).json()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        second = pool.submit(lock, url, "job", ttlMs=30_000)
        time.sleep(0.3)
        third = pool.submit(lock, url, "job", ttlMs=30_000)
        time.sleep(0.3)
        assert not second.done() and not third.done()
        holder = httpx.get(f"{url}/v1/locks/job", timeout=5).json()
        assert holder["token"] == first["token"] and holder["lease"] == first["lease"]
        released = httpx.delete(f"{url}/v1/locks/job", params={
            "lease": first["lease"], "token": first["token"]}, timeout=5)
        assert released.json()["released"] is True
        got_second = second.result(10).json()
        assert not third.done()
        httpx.delete(f"{url}/v1/locks/job", params={
            "lease": got_second["lease"], "token": got_second["token"]}, timeout=5)
        got_third = third.result(10).json()
    assert first["token"] < got_second["token"] < got_third["token"]


def test_a_retried_release_never_frees_a_newer_holder_on_the_same_lease(start_server):
    url = start_server().url
    lease = grant(url, 60_000)
    old = lock(url, "db", lease=lease).json()
    release = {"lease": lease, "token": old["token"]}
    assert httpx.delete(f"{url}/v1/locks/db", params=release, timeout=5).json()["released"]
    new = lock(url, "db", lease=lease).json()
    assert new["token"] > old["token"]
    retried = httpx.delete(f"{url}/v1/locks/db", params=release, timeout=5)
    assert retried.status_code == 200 and retried.json()["released"] is False
    assert httpx.get(f"{url}/v1/locks/db", timeout=5).json()["token"] == new["token"]


def test_a_stale_holder_is_fenced_off_by_its_token(start_server):
    """The holder's lease runs out (it was paused); the next holder writes; the stale
    one's write, guarded by its token, fails."""
    url = start_server().url
    stale = lock(url, "fenced", ttlMs=1000).json()
    waiting_since = time.monotonic()
    fresh = lock(url, "fenced", ttlMs=30_000).json()  # waits for the lease to run out
    assert time.monotonic() - waiting_since < 3.5
    assert fresh["token"] > stale["token"]

    def guarded_write(holder: dict, value: str) -> bool:
        r = httpx.post(f"{url}/v1/txn", json={
            "compare": [{"key": holder["key"], "target": "createRevision", "op": "=",
                         "value": holder["token"]}],
            "success": [{"op": "put", "key": "fenced-data", "value": value}]}, timeout=5)
        return r.json()["succeeded"]

    assert guarded_write(fresh, "fresh") is True
    assert guarded_write(stale, "stale") is False
    assert httpx.get(f"{url}/v1/keys/fenced-data", timeout=5).json()["value"] == "fresh"


def test_a_lock_wait_gives_up_after_wait_ms_and_holds_nothing(start_server):
    url = start_server().url
    holder = lock(url, "busy").json()
    started = time.monotonic()
    r = lock(url, "busy", waitMs=300)
    assert r.status_code == 408 and r.json()["code"] == "wait_timed_out"
    assert 0.25 < time.monotonic() - started < 3
    # it left the queue, and its lease went with it
    keys = httpx.get(f"{url}/v1/keys", params={"prefix": "_raftkv/locks/busy/"},
                     timeout=5).json()["items"]
    assert [item["key"] for item in keys] == [holder["key"]]
    assert httpx.get(f"{url}/v1/leases", timeout=5).json()["leases"] == [holder["lease"]]
    assert lock(url, "bad/name").status_code == 404  # (two path segments: no such route)
    assert lock(url, "busy", lease=12345, waitMs=10).status_code == 404  # no such lease


def test_an_election_campaigns_proclaims_is_observed_and_resigns(start_server):
    url = start_server().url
    elections = f"{url}/v1/elections/primary"
    with EventStream(f"{elections}/observe") as observer:
        assert observer.next().data == {"leader": None}
        first = httpx.post(elections, json={"value": "node-a"}, timeout=10).json()
        assert observer.next().data["leader"]["value"] == "node-a"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            second = pool.submit(httpx.post, elections, json={"value": "node-b"}, timeout=10)
            time.sleep(0.3)
            proclaimed = httpx.put(elections, json={"value": "node-a:v2", "lease": first["lease"],
                                                    "token": first["token"]}, timeout=5)
            assert proclaimed.json()["proclaimed"] is True
            assert observer.next().data["leader"]["value"] == "node-a:v2"
            assert httpx.get(elections, timeout=5).json()["value"] == "node-a:v2"
            httpx.delete(elections, params={"lease": first["lease"], "token": first["token"]},
                         timeout=5)
            leader = second.result(10).json()
        shown = observer.next().data["leader"]
    assert shown["value"] == "node-b" and shown["token"] == leader["token"] > first["token"]
    stale = httpx.put(elections, json={"value": "x", "lease": first["lease"],
                                       "token": first["token"]}, timeout=5)
    assert stale.json()["proclaimed"] is False


def test_leases_across_a_leader_kill_neither_forgiven_nor_revoked_early(tmp_path):
    cluster = Cluster(tmp_path, 3)
    try:
        cluster.start()
        leader = cluster.leader()
        follower = cluster.followers()[0]
        url = cluster.url(follower)
        expiring = grant(url, 1500)
        kept = grant(url, 1500)
        put(url, "doomed", "1", lease=expiring)
        put(url, "alive", "1", lease=kept)
        granted_at = time.monotonic()
        cluster.nodes[leader].kill()
        new_leader = cluster.leader(exclude=leader)
        url = cluster.url(new_leader)
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:  # keep one alive through the failover
            r = httpx.post(f"{url}/v1/leases/{kept}/keepalive", timeout=5)
            assert r.status_code == 200, f"a live lease was revoked: {r.text}"
            if httpx.get(f"{url}/v1/keys/doomed", timeout=5).status_code == 404:
                break
            time.sleep(0.2)
        gone_after = time.monotonic() - granted_at
        # TTL + one election timeout (20 ticks of 50 ms) + the expiry cycle, with slack
        assert httpx.get(f"{url}/v1/keys/doomed", timeout=5).status_code == 404
        assert 1.4 < gone_after < 1.5 + 1.0 + 1.5, gone_after
        assert httpx.get(f"{url}/v1/keys/alive", timeout=5).status_code == 200
    finally:
        cluster.stop()
