"""Backups taken from live nodes while writes go on, restored into new data directories,
damaged files refused, scheduled backups kept by retention - real processes, real
files, the real CLI."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time

import httpx
import pytest
import redis

from tests.support.cluster import Cluster
from tests.support.node import ROOT

SEEDED = 20_000  # keys of each of four types (make soak: 250,000 each, 1M in all)


def raftkv(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raftkv", *args], capture_output=True,
                          text=True, timeout=timeout_s, cwd=ROOT)


def seed(r: redis.Redis, per_type: int) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(per_type):
        pipe.set(f"s:{i}", f"v{i}")
        pipe.hset(f"h:{i}", mapping={"a": i, "b": "x"})
        pipe.rpush(f"l:{i}", "x", str(i))
        pipe.zadd(f"z:{i}", {"m": i})
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    r.set("ttl-key", "v", ex=3600)


def test_a_backup_taken_under_writes_holds_every_acknowledged_write_and_restores(
        start_server, tmp_path):
    backup_under_writes(start_server, tmp_path, SEEDED)


@pytest.mark.slow
def test_a_backup_of_a_million_keys_under_writes(start_server, tmp_path):
    backup_under_writes(start_server, tmp_path, 250_000)


def backup_under_writes(start_server, tmp_path, per_type: int) -> None:
    node = start_server(resp=True)
    r = redis.Redis(port=node.resp_port, decode_responses=True)
    seed(r, per_type)
    acknowledged: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        w = redis.Redis(port=node.resp_port)
        i = 0
        while not stop.is_set():
            w.set(f"w:{i}", i)
            acknowledged.append(i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.3)
    before = len(acknowledged)  # every one of these was acknowledged before the backup began
    backup = tmp_path / "mixed.rkvbackup"
    result = raftkv("backup", str(backup), "--url", node.url, timeout_s=600)
    stop.set()
    thread.join()
    assert result.returncode == 0, result.stderr
    assert f"{backup}: {backup.stat().st_size} bytes, index " in result.stdout
    assert "sha256 " in result.stdout and before > 0 and len(acknowledged) > before

    restored_dir = tmp_path / "restored"
    result = raftkv("restore", str(backup), "--data-dir", str(restored_dir))
    assert result.returncode == 0, result.stderr
    copy = start_server(data_dir=restored_dir, resp=True)
    c = redis.Redis(port=copy.resp_port, decode_responses=True)
    assert all(c.exists(f"w:{i}") for i in range(before))
    for i in (0, 1, per_type // 2, per_type - 1):
        assert c.get(f"s:{i}") == f"v{i}"
        assert c.hgetall(f"h:{i}") == {"a": str(i), "b": "x"}
        assert c.lrange(f"l:{i}", 0, -1) == ["x", str(i)]
        assert c.zscore(f"z:{i}", "m") == i
    assert 3000 < c.ttl("ttl-key") <= 3600
    assert c.dbsize() >= 4 * per_type + 1 + before
    # the restored node is an ordinary node: it takes writes and keeps them
    assert c.set("after", "1") and c.get("after") == "1"
    # restore never writes over an existing data directory
    again = raftkv("restore", str(backup), "--data-dir", str(restored_dir))
    assert again.returncode == 2 and "not empty" in again.stderr


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped", "not-a-backup"])
def test_a_damaged_backup_is_refused_by_name_and_nothing_is_written(
        start_server, tmp_path, damage):
    node = start_server()
    assert httpx.put(f"{node.url}/v1/keys/k", json={"value": "v" * 1000}).status_code == 201
    good = tmp_path / "good.rkvbackup"
    assert raftkv("backup", str(good), "--url", node.url).returncode == 0
    data = good.read_bytes()
    bad = tmp_path / f"{damage}.rkvbackup"
    bad.write_bytes({"truncated": data[:len(data) // 2],
                     "bit-flipped": data[:600] + bytes([data[600] ^ 0x10]) + data[601:],
                     "not-a-backup": b"hello, world\n" * 10}[damage])
    result = raftkv("restore", str(bad), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1
    assert str(bad) in result.stderr and "damaged or truncated" in result.stderr
    assert not (tmp_path / "d").exists()


def test_scheduled_backups_are_written_atomically_and_pruned(start_server, tmp_path):
    target = tmp_path / "backups"
    config = tmp_path / "backup.toml"
    config.write_text(f'[backup]\ndir = "{target}"\ninterval_s = 1\nretain = 2\n')
    node = start_server("--config", str(config))
    assert httpx.put(f"{node.url}/v1/keys/k", json={"value": "1"}).status_code == 201
    time.sleep(3.6)
    names = sorted(p.name for p in target.iterdir())
    assert len(names) == 2 and all(n.endswith(".rkvbackup") for n in names), names
    newest = target / names[-1]
    result = raftkv("restore", str(newest), "--data-dir", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert '"backup written"' in node.logs() or "backup written" in node.logs()


def test_a_backup_needs_an_admin_token(start_server, tmp_path):
    config = tmp_path / "auth.toml"
    config.write_text("\n".join(
        f'[[auth.tokens]]\nname = "{name}"\nsha256 = "{hashlib.sha256(name.encode()).hexdigest()}"'
        f'\nrole = "{role}"' for name, role in (("writer-token-1", "write"),
                                                ("admin-token-12", "admin"))) + "\n")
    node = start_server("--config", str(config))
    refused = raftkv("backup", str(tmp_path / "x"), "--url", node.url, "--token",
                     "writer-token-1")
    assert refused.returncode == 1 and not (tmp_path / "x").exists()
    assert not (tmp_path / "x.part").exists()
    assert raftkv("backup", str(tmp_path / "y"), "--url", node.url, "--token",
                  "admin-token-12").returncode == 0


def test_a_cluster_backup_seeds_the_first_member_of_a_new_cluster(tmp_path):
    old = Cluster(tmp_path / "old", 3).start()
    try:
        leader = old.nodes[old.leader()]
        for i in range(200):
            assert httpx.put(f"{leader.url}/v1/keys/k{i}",
                             json={"value": str(i)}).status_code == 201
        follower = next(n for n_id, n in old.nodes.items() if n is not leader)
        backup = tmp_path / "cluster.rkvbackup"
        result = raftkv("backup", str(backup), "--url", follower.url)  # from a follower
        assert result.returncode == 0, result.stderr
    finally:
        old.stop()
    new = Cluster(tmp_path / "new", 2)
    first, second = new.nodes["n1"], new.nodes["n2"]
    assert raftkv("restore", str(backup), "--data-dir", str(first.data_dir),
                  "--node-id", "n1").returncode == 0
    try:
        first.start()
        second.start(wait=False)
        added = raftkv("cluster", "add", "n2", "--url", first.url)
        assert added.returncode == 0, added.stderr
        second.wait_ready(30)
        for node in (first, second):  # the restored data reached the member added after
            deadline = time.monotonic() + 15
            while True:
                r = httpx.get(f"{node.url}/v1/keys/k199?consistency=stale")
                if r.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert r.json()["value"] == "199"
    finally:
        new.stop()
