"""Cluster mode with real processes on loopback: the seeds' acceptance list, forwarding,
durability across kill -9 of every node, membership changes, and refusals."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.cluster import Cluster, wait_for
from tests.support.node import ROOT, free_port


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator:
    made: list[Cluster] = []

    def make(size: int = 3, *args: str, **kw) -> Cluster:
        cluster = Cluster(tmp_path, size, *args, **kw)
        made.append(cluster)
        return cluster.start()

    yield make
    for cluster in made:
        cluster.stop()


def put(url: str, key: str, value: str, **kw) -> httpx.Response:
    return httpx.put(f"{url}/v1/keys/{key}", json={"value": value}, timeout=10, **kw)


def readyz(url: str) -> str:
    try:
        return httpx.get(url + "/readyz", timeout=1).text
    except httpx.HTTPError:
        return ""  # not listening yet


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raftkv", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_exactly_one_leader_and_every_node_agrees(make_cluster) -> None:
    cluster = make_cluster(3)
    leader = cluster.leader()
    health = cluster.health()
    assert sorted(health) == ["n1", "n2", "n3"]
    assert [h["id"] for h in health.values() if h["state"] == "leader"] == [leader]
    assert {h["leaderId"] for h in health.values()} == {leader}
    assert len({h["term"] for h in health.values()}) == 1
    for node_id, h in health.items():
        assert (h["lastHeartbeatAgoMs"] is None) == (node_id == leader)
    members = httpx.get(cluster.url(leader) + "/v1/cluster/members").json()
    assert [(m["id"], m["role"]) for m in members["members"]] == \
        [("n1", "voter"), ("n2", "voter"), ("n3", "voter")]
    assert members["leaderId"] == leader


def test_writes_to_a_follower_reach_the_leader_and_every_replica(make_cluster) -> None:
    cluster = make_cluster(3, resp=True)
    follower = cluster.followers()[0]
    created = put(cluster.url(follower), "k", "v1")
    assert created.status_code == 201, created.text
    revision = created.json()["modRevision"]
    cas = put(cluster.url(follower), "k", "v2", headers={"If-Match": f'"{revision}"'})
    assert cas.status_code == 200
    stale_cas = put(cluster.url(follower), "k", "v3", headers={"If-Match": f'"{revision}"'})
    assert stale_cas.status_code == 412
    for node_id in cluster.nodes:  # linearizable reads, from every node
        got = httpx.get(cluster.url(node_id) + "/v1/keys/k")
        assert got.json()["value"] == "v2", node_id
    stale = httpx.get(cluster.url(follower) + "/v1/keys/k?consistency=stale")
    assert int(stale.headers["X-Raftkv-Applied-Index"]) >= cas.json()["modRevision"]
    # The Redis protocol on a follower: forwarded the same way.
    client = redis.Redis(port=cluster.nodes[follower].resp_port, decode_responses=True)
    assert client.set("r", "1") is True
    assert client.incr("r") == 2
    leader = cluster.leader()
    assert redis.Redis(port=cluster.nodes[leader].resp_port).get("r") == b"2"
    client.close()


def test_kill9_of_the_leader_elects_another_and_it_rejoins_as_follower(make_cluster) -> None:
    cluster = make_cluster(3)
    acknowledged = {}
    for i in range(30):
        node = list(cluster.nodes)[i % 3]
        assert put(cluster.url(node), f"key{i}", f"v{i}").status_code == 201
        acknowledged[f"key{i}"] = f"v{i}"
    old = cluster.leader()
    old_term = cluster.health()[old]["term"]
    cluster.nodes[old].kill()
    new = cluster.leader(exclude=old)
    assert new != old
    assert cluster.health()[new]["term"] > old_term
    # the survivors learnt it from their links closing, not from an election timeout
    assert all("every link to the leader" in cluster.nodes[n].logs()
               for n in cluster.nodes if n != old)
    assert put(cluster.url(new), "after", "failover").status_code == 201
    cluster.nodes[old].start()
    wait_for(lambda: cluster.health().get(old, {}).get("leaderId") == new, 15,
             "the old leader to follow the new one")
    assert cluster.health()[old]["state"] == "follower"
    for key, value in {**acknowledged, "after": "failover"}.items():
        got = httpx.get(cluster.url(old) + f"/v1/keys/{key}")
        assert got.status_code == 200 and got.json()["value"] == value


def test_kill9_of_every_node_loses_no_acknowledged_write(make_cluster) -> None:
    cluster = make_cluster(3)
    acknowledged = {}
    for i in range(60):
        node = list(cluster.nodes)[i % 3]
        response = put(cluster.url(node), f"key{i}", f"v{i}")
        assert response.status_code == 201
        acknowledged[f"key{i}"] = f"v{i}"
    for node in cluster.nodes.values():
        node.kill()
    cluster.start()
    leader = cluster.leader()
    items = httpx.get(cluster.url(leader) + "/v1/keys?limit=1000").json()["items"]
    assert {i["key"]: i["value"] for i in items} == acknowledged


def test_no_leader_means_503_and_the_write_is_not_applied(make_cluster) -> None:
    cluster = make_cluster(3)
    leader = cluster.leader()
    survivor, other = cluster.followers()
    cluster.nodes[leader].kill()
    cluster.nodes[other].kill()
    wait_for(lambda: cluster.health()[survivor]["leaderId"] is None, 15, "no leader")
    refused = put(cluster.url(survivor), "lost", "x")
    assert refused.status_code == 503
    assert refused.json()["code"] == "unavailable"
    assert "Retry-After" in refused.headers
    assert httpx.get(cluster.url(survivor) + "/readyz").status_code == 503
    cluster.nodes[other].start(wait=False)
    leader = cluster.leader()
    assert httpx.get(cluster.url(leader) + "/v1/keys/lost").status_code == 404


def test_a_node_joins_by_snapshot_and_members_can_be_removed(make_cluster) -> None:
    cluster = make_cluster(3)
    leader = cluster.leader()
    for i in range(200):
        assert put(cluster.url(leader), f"key{i:03d}", f"v{i}").status_code == 201
    for node_id in cluster.nodes:  # compact every log: the newcomer must get a snapshot
        assert httpx.post(cluster.url(node_id) + "/v1/admin/snapshot").status_code == 200
    n4 = cluster.add_process("n4", ["n1", "n2", "n3"]).start(wait=False)
    wait_for(lambda: "not a member" in readyz(n4.url), 10,
             "the new node to wait for its addition")
    urls = ",".join(cluster.url(n) for n in ("n1", "n2", "n3"))
    added = cli("cluster", "add", "n4", "--url", urls)
    assert added.returncode == 0, added.stderr
    n4.wait_ready(20)
    wait_for(lambda: "n4\tvoter" in cli("cluster", "members", "--url", urls).stdout, 15,
             "n4 to be promoted")
    items = httpx.get(n4.url + "/v1/keys?limit=1000&consistency=stale").json()["items"]
    assert len(items) == 200
    assert list((n4.data_dir / "snapshots").glob("snap-*.snap"))  # caught up by snapshot
    victim = next(n for n in ("n1", "n2", "n3") if n != cluster.leader())
    removed = cli("cluster", "remove", victim, "--url", urls)
    assert removed.returncode == 0, removed.stderr
    members = cli("cluster", "members", "--url", cluster.url(cluster.leader()))
    assert victim not in members.stdout and "n4\tvoter" in members.stdout
    cluster.nodes[victim].kill()
    assert put(cluster.url(cluster.leader()), "after-remove", "ok").status_code == 201
    refused = cli("cluster", "remove", "n9", "--url", urls)
    assert refused.returncode == 1 and "cannot remove n9" in refused.stderr


def test_a_member_with_a_wiped_data_dir_is_refused_until_removed_and_added(make_cluster) -> None:
    cluster = make_cluster(3)
    leader = cluster.leader()
    assert put(cluster.url(leader), "kept", "yes").status_code == 201
    victim = cluster.followers()[0]
    cluster.nodes[victim].kill()
    shutil.rmtree(cluster.nodes[victim].data_dir)
    cluster.nodes[victim].start(wait=False)
    wait_for(lambda: "came back with a new data directory" in cluster.nodes[victim].logs(), 10,
             "the refusal")
    assert httpx.get(cluster.url(victim) + "/readyz").status_code == 503
    assert cluster.health()[victim]["term"] == 0  # it voted for no one, joined nothing
    urls = ",".join(cluster.url(n) for n in cluster.nodes if n != victim)
    assert cli("cluster", "remove", victim, "--url", urls).returncode == 0
    assert cli("cluster", "add", victim, "--url", urls).returncode == 0
    cluster.nodes[victim].wait_ready(20)
    assert httpx.get(cluster.url(victim) + "/v1/keys/kept").json()["value"] == "yes"


def test_transfer_leadership(make_cluster) -> None:
    cluster = make_cluster(3)
    leader = cluster.leader()
    target = cluster.followers()[0]
    moved = cli("cluster", "transfer", target, "--url", cluster.url(leader))
    assert moved.returncode == 0, moved.stderr
    assert cluster.leader(exclude=leader) == target
    bad = httpx.post(cluster.url(target) + "/v1/cluster/transfer-leadership",
                     json={"to": "nobody"})
    assert bad.status_code == 400


def test_a_peer_with_another_secret_is_not_let_in(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3, env={"RAFTKV_CLUSTER_SECRET": "s" * 20})
    try:
        cluster.start()  # the same secret everywhere: a cluster forms
        leader = cluster.leader()
        outsider = cluster.followers()[0]
        cluster.nodes[outsider].stop()
        cluster.nodes[outsider].env["RAFTKV_CLUSTER_SECRET"] = "t" * 20
        cluster.nodes[outsider].start(wait=False)
        wait_for(lambda: "cluster secret" in cluster.nodes[outsider].logs(), 10,
                 "the outsider to be refused")
        assert put(cluster.url(leader), "k", "v").status_code == 201
        assert cluster.health()[outsider]["leaderId"] is None
        assert httpx.get(cluster.url(outsider) + "/readyz").status_code == 503
    finally:
        cluster.stop()


def test_a_cluster_off_loopback_requires_a_secret(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "raftkv", "serve", "--host", "0.0.0.0",
                          "--insecure", "--peers", "http://10.0.0.2:8080",
                          "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert run.returncode == 2
    assert "--cluster-secret" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_a_data_dir_of_another_node_id_is_refused(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3)
    try:
        cluster.start()
        cluster.nodes["n1"].stop()
        run = subprocess.run([sys.executable, "-m", "raftkv", "serve", "--node-id", "n2",
                              "--port", str(free_port()), "--peers", cluster.url("n2"),
                              "--data-dir", str(cluster.nodes["n1"].data_dir)],
                             capture_output=True, text=True, cwd=ROOT, timeout=30)
        assert run.returncode == 2
        assert "belongs to node n1" in run.stderr
    finally:
        cluster.stop()


def _keys_gauge(url: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("raftkv_keys "):
            return float(line.split()[1])
    raise AssertionError("no raftkv_keys in /metrics")


def test_ttl_expiry_is_proposed_by_the_leader_and_replicated(make_cluster) -> None:
    cluster = make_cluster(3)
    follower = cluster.followers()[0]
    response = httpx.put(cluster.url(follower) + "/v1/keys/brief", json={"value": "x",
                                                                          "ttlMs": 400})
    assert response.status_code == 201
    deadline = response.json()["expiresAtMs"]
    for node_id in cluster.nodes:
        assert httpx.get(cluster.url(node_id) + "/v1/keys/brief").status_code == 200
    wait_for(lambda: time.time() * 1000 > deadline + 50, 5, "the deadline")
    for node_id in cluster.nodes:  # hidden everywhere at once, deleted or not
        stale = httpx.get(cluster.url(node_id) + "/v1/keys/brief?consistency=stale")
        assert stale.status_code == 404, node_id
    # The leader's expiry cycle proposes the delete; every replica applies it.
    wait_for(lambda: all(_keys_gauge(cluster.url(n)) == 0 for n in cluster.nodes), 10,
             "the expired key to be deleted on every node")


def test_membership_changes_under_load_lose_no_acknowledged_write(make_cluster) -> None:
    cluster = make_cluster(3)
    acknowledged: dict[str, str] = {}
    unexpected: list[str] = []
    stop = threading.Event()
    targets = [cluster.url(n) for n in ("n1", "n2", "n3")]  # fixed: nodes change meanwhile

    def writer(number: int) -> None:
        with httpx.Client(timeout=5) as http:
            i = 0
            while not stop.is_set():
                i += 1
                key, node = f"w{number}-{i}", targets[i % 3]  # one may be removed
                try:
                    response = http.put(f"{node}/v1/keys/{key}", json={"value": key})
                except httpx.HTTPError:
                    continue  # the node is being removed or restarted: outcome unknown
                if response.status_code == 201:
                    acknowledged[key] = key
                elif response.status_code not in (503, 504):
                    unexpected.append(f"{response.status_code} {response.text}")

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in writers:
        thread.start()
    try:
        time.sleep(1)
        n4 = cluster.add_process("n4", ["n1", "n2", "n3"]).start(wait=False)
        urls = ",".join(cluster.url(n) for n in ("n1", "n2", "n3"))
        assert cli("cluster", "add", "n4", "--url", urls).returncode == 0
        n4.wait_ready(30)
        wait_for(lambda: "n4\tvoter" in cli("cluster", "members", "--url", urls).stdout, 20,
                 "n4 to be promoted under load")
        victim = next(n for n in ("n1", "n2", "n3") if n != cluster.leader())
        assert cli("cluster", "remove", victim, "--url", urls).returncode == 0
        cluster.nodes[victim].kill()
        time.sleep(1)
    finally:
        stop.set()
        for thread in writers:
            thread.join(30)
    assert unexpected == []
    assert len(acknowledged) > 50
    missing = set(acknowledged) - _all_keys(cluster.url(cluster.leader()))
    assert missing == set()


def _all_keys(url: str) -> set[str]:
    keys: set[str] = set()
    cursor = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        page = httpx.get(url + "/v1/keys", params=params, timeout=10).json()
        keys |= {i["key"] for i in page["items"]}
        cursor = page["nextCursor"]
        if cursor is None:
            return keys


def test_failover_over_ten_trials_prints_its_distribution(make_cluster, capsys) -> None:
    """The seeds' acceptance: kill -9 the leader, a new one is elected and takes writes,
    ten times. The seconds are printed (the figure lives in benchmarks/, not here)."""
    cluster = make_cluster(3)
    seconds = []
    for trial in range(10):
        old = cluster.leader()
        cluster.nodes[old].kill()
        started = time.monotonic()
        survivors = [n for n in cluster.nodes if n != old]
        wait_for(lambda s=survivors: any(_write_ok(cluster.url(n)) for n in s), 20,
                 f"a write after failover {trial}")
        seconds.append(time.monotonic() - started)
        assert cluster.leader(exclude=old) != old
        cluster.nodes[old].start()
        wait_for(lambda o=old: cluster.health().get(o, {}).get("state") == "follower", 15,
                 "the old leader to rejoin as a follower")
    with capsys.disabled():
        print(f"\nfailover, kill -9 -> first write, 10 trials (s): "
              f"{' '.join(f'{s:.2f}' for s in sorted(seconds))}")


def _write_ok(url: str) -> bool:
    try:
        return put(url, "failover", "x").status_code in (200, 201)
    except httpx.HTTPError:
        return False


def test_a_leader_stopped_with_sigterm_hands_leadership_over_first(make_cluster) -> None:
    cluster = make_cluster(3)
    leader = cluster.leader()
    assert put(cluster.url(leader), "before", "stop").status_code == 201
    assert cluster.nodes[leader].stop() == 0
    assert "handed leadership over before stopping" in cluster.nodes[leader].logs()
    successor = cluster.leader(exclude=leader)
    assert put(cluster.url(successor), "after", "stop").status_code == 201
    assert httpx.get(cluster.url(successor) + "/v1/keys/before").json()["value"] == "stop"
