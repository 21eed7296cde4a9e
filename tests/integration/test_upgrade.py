"""Data directories written before format 2 (committed fixtures of a single node and
of a cluster member, tests/fixtures/format-1/README.md): a node refuses them and names
the command that converts them; `raftkv upgrade` converts them, keeps the old files,
and the node then serves exactly the data they held."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from raftkv.replication.raft.log import WalRaftLog
from raftkv.replication.replay import rebuild
from raftkv.storage.fs import OsFileSystem
from tests.support.node import ROOT, ServerProcess

FIXTURES = ROOT / "tests" / "fixtures" / "format-1"
KEYS = {**{f"before-{i:02d}": f"v{i}" for i in range(1, 20)},
        **{f"after-{i:02d}": f"w{i}" for i in range(10)}}


def raftkv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raftkv", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def fixture(name: str, tmp_path: Path) -> Path:
    data_dir = tmp_path / name
    shutil.copytree(FIXTURES / name, data_dir)
    return data_dir


def test_a_format_1_single_node_is_refused_with_the_command_that_converts_it(tmp_path):
    data_dir = fixture("single-node", tmp_path)
    before = sorted(p.relative_to(data_dir) for p in data_dir.rglob("*"))
    node = ServerProcess(data_dir)
    node.start(wait=False)
    assert node.wait(20) == 1
    assert f"raftkv upgrade --data-dir {data_dir}" in node.logs()
    node.stop()
    assert sorted(p.relative_to(data_dir) for p in data_dir.rglob("*")) == before  # untouched


def test_an_upgraded_single_node_serves_what_it_held_and_keeps_the_old_files(tmp_path):
    data_dir = fixture("single-node", tmp_path)
    done = raftkv("upgrade", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    assert "single node" in done.stdout and "snapshot at 20" in done.stdout
    assert (data_dir / "format-1" / "wal").is_dir() and (data_dir / "FORMAT").is_file()
    node = ServerProcess(data_dir)
    try:
        node.start()
        for key, value in KEYS.items():
            r = httpx.get(f"{node.url}/v1/keys/{key}")
            assert r.status_code == 200 and r.json()["value"] == value, (key, r.text)
        assert httpx.get(f"{node.url}/v1/keys/before-00").status_code == 404
        assert httpx.get(f"{node.url}/v1/keys/ttl").json()["expiresAtMs"] > 0
        r = httpx.put(f"{node.url}/v1/keys/new", json={"value": "x"})
        assert r.status_code == 201 and r.json()["modRevision"] > 32  # revisions go on
        assert node.stop() == 0
        node.start()
        assert httpx.get(f"{node.url}/v1/keys/new").json()["value"] == "x"
    finally:
        node.stop()
    again = raftkv("upgrade", "--data-dir", str(data_dir))
    assert again.returncode == 1 and "already in format 2" in again.stderr


def test_an_upgraded_cluster_member_holds_its_log_snapshot_and_membership(tmp_path):
    data_dir = fixture("cluster-member-n1", tmp_path)
    refused = ServerProcess(data_dir, env={"NODE_ID": "n1",
                                           "PEERS": "http://127.0.0.1:1,http://127.0.0.1:2"})
    refused.start(wait=False)
    assert refused.wait(20) == 1 and "raftkv upgrade --data-dir" in refused.logs()
    refused.stop()
    done = raftkv("upgrade", "--data-dir", str(data_dir))
    assert done.returncode == 0 and "cluster member" in done.stdout, done.stderr
    raft_log = WalRaftLog(OsFileSystem(), str(data_dir))
    stored = raft_log.load()
    assert stored.snapshot is not None and stored.snapshot.voters == ("n1", "n2", "n3")
    assert stored.hard_state.term >= 1 and stored.hard_state.commit >= stored.snapshot.index
    state = rebuild(stored, stored.hard_state.commit)
    found = {e.key.decode(): e.value.decode() for e in state.keyspace.scan(0, limit=100)}
    assert found == KEYS
    raft_log.store.close()


@pytest.mark.parametrize("name", ["single-node", "cluster-member-n1"])
def test_an_interrupted_upgrade_is_refused_and_finished_by_running_it_again(tmp_path, name):
    data_dir = fixture(name, tmp_path)
    (data_dir / "format-1").mkdir()  # as if the upgrade stopped after making it
    node = ServerProcess(data_dir, env={"NODE_ID": "n1"} if "cluster" in name else {})
    node.start(wait=False)
    assert node.wait(20) == 1 and "was interrupted" in node.logs()
    node.stop()
    assert raftkv("upgrade", "--data-dir", str(data_dir)).returncode == 0
    assert (data_dir / "FORMAT").is_file() and not (data_dir / "format-2.tmp").exists()


def test_a_snapshot_with_a_version_1_image_still_loads_and_the_node_goes_on(tmp_path):
    """tests/fixtures/image-1: written before typed values; today's node serves its
    data, then typed writes, a version 2 snapshot and a restart from it."""
    import redis

    data_dir = tmp_path / "node"
    shutil.copytree(ROOT / "tests" / "fixtures" / "image-1" / "single-node", data_dir)
    node = ServerProcess(data_dir, resp=True).start()
    r = redis.Redis(port=node.resp_port)
    try:
        expected = {**{f"before-snapshot:{i:02d}".encode(): f"v{i}".encode()
                       for i in range(1, 50)},
                    **{f"after-snapshot:{i}".encode(): f"w{i}".encode() for i in range(10)},
                    b"ttl-key": b"t", b"counter": b"5", b"cas": b"1"}
        assert {k: r.get(k) for k in r.keys("*")} == expected
        assert r.ttl("ttl-key") > 10**7
        r.rpush("queue", "a", "b")
        assert httpx.post(node.url + "/v1/admin/snapshot", timeout=30).status_code == 200
        node.stop()
        node.start()
        assert r.lrange("queue", 0, -1) == [b"a", b"b"] and r.get("counter") == b"5"
        assert len(r.keys("*")) == len(expected) + 1
    finally:
        r.close()
        node.stop()


def test_a_snapshot_with_a_version_2_image_still_loads_and_scripts_join_it(tmp_path):
    """tests/fixtures/image-2: written before scripts; today's node serves its typed
    data, caches a script, and keeps the cache through a version 3 snapshot."""
    import redis

    data_dir = tmp_path / "node"
    shutil.copytree(ROOT / "tests" / "fixtures" / "image-2" / "single-node", data_dir)
    node = ServerProcess(data_dir, resp=True).start()
    r = redis.Redis(port=node.resp_port)
    try:
        assert sorted(r.keys("*")) == [b"after-snapshot", b"board", b"expiring", b"profile:1",
                                       b"queue", b"tags", b"ttl-key"]
        assert r.hgetall("profile:1") == {b"name": b"ada", b"lang": b"lua"}
        assert r.lrange("queue", 0, -1) == [b"a", b"b", b"c", b"d"]
        assert r.smembers("tags") == {b"w", b"x", b"y", b"z"}
        assert r.zrange("board", 0, -1, withscores=True) == [(b"one", 1.5), (b"two", 2.0),
                                                              (b"three", 3.0)]
        assert r.ttl("expiring") > 10**7 and r.ttl("ttl-key") > 10**7
        sha = r.script_load("return redis.call('LLEN', KEYS[1])")
        assert httpx.post(node.url + "/v1/admin/snapshot", timeout=30).status_code == 200
        node.stop()
        node.start()
        assert r.evalsha(sha, 1, "queue") == 4 and r.get("after-snapshot") == b"w"
    finally:
        r.close()
        node.stop()
