"""raftkv.client (sync and asyncio) and the CLI built on it, against real nodes: keys
and transactions; a lease kept alive in the background past its TTL; a watch that
resumes by itself when the node it reads from is killed, losing and repeating
nothing; a lock whose token fences writes; elections; and the CLI's watch, lease,
lock and elect commands."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import pytest

from raftkv.client import AsyncClient, Client, NotFound, WaitTimedOut
from tests.support.cluster import Cluster
from tests.support.node import ROOT


def test_keys_txn_and_a_lease_kept_alive_in_the_background(start_server):
    url = start_server().url
    with Client(url) as kv:
        revision = kv.put("app/a", "1")
        kv.put("app/b", b"\xff\x00")  # bytes that are not UTF-8 come back as they went
        assert kv.get("app/a").mod_revision == revision and kv.get("missing") is None
        assert [(item.key, item.value) for item in kv.scan("app/", page_size=1)] == [
            ("app/a", b"1"), ("app/b", b"\xff\x00")]
        result = kv.txn([{"key": "app/a", "target": "value", "op": "=", "value": "1"}],
                        [{"op": "put", "key": "app/a", "value": "2"}])
        assert result.succeeded and kv.get("app/a").value == b"2"
        assert kv.delete("app/a") and not kv.delete("app/a")
        with kv.lease(1000) as lease:
            kv.put("session", "alive", lease=lease.id)
            time.sleep(2.5)  # well past its TTL: kept alive
            assert kv.get("session") is not None and not lease.lost.is_set()
        assert kv.get("session") is None  # revoked on close
        with pytest.raises(NotFound):
            kv.put("orphan", "x", lease=123456)


def test_a_watch_resumes_on_another_node_when_its_node_dies(tmp_path):
    cluster = Cluster(tmp_path, 3)
    try:
        cluster.start()
        leader = cluster.leader()
        follower = cluster.followers()[0]
        urls = [cluster.url(follower), *(cluster.url(n) for n in cluster.nodes if n != follower)]
        writer = Client([cluster.url(n) for n in cluster.nodes])
        watcher = Client(urls, retries=5)
        watcher.endpoints.probed = True  # read from the follower first (urls[0])
        first = writer.put("feed/0", "0")
        seen: list[tuple[int, bytes]] = []

        def follow() -> None:
            for event in watcher.watch(prefix="feed/", from_revision=first):
                seen.append((event.revision, event.value))
                if len(seen) == 20:
                    return

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        written = [first]
        for i in range(1, 10):
            written.append(writer.put(f"feed/{i}", str(i)))
        time.sleep(0.5)
        cluster.nodes[follower].kill()  # the node the watch reads from
        for i in range(10, 20):
            written.append(writer.put(f"feed/{i}", str(i)))
        reader.join(30)
        assert [revision for revision, _ in seen] == written
        assert [value for _, value in seen] == [str(i).encode() for i in range(20)]
        assert leader in cluster.nodes
        writer.close()
        watcher.close()
    finally:
        cluster.stop()


def test_a_lock_exposes_its_token_and_its_fence_refuses_a_stale_holder(start_server):
    url = start_server().url
    with Client(url) as kv, kv.lock("deploy", ttl_ms=5000) as hold:
        assert kv.lock_holder("deploy").token == hold.token
        assert kv.txn([hold.fence()], [{"op": "put", "key": "release", "value": "1"}]).succeeded
        with pytest.raises(WaitTimedOut), kv.lock("deploy", wait_s=0.3):
            pass
    with Client(url) as kv:
        assert kv.lock_holder("deploy") is None
        stale = kv.txn([hold.fence()], [{"op": "put", "key": "release", "value": "2"}])
        assert not stale.succeeded and kv.get("release").value == b"1"
        with kv.campaign("primary", "me") as leading:
            assert kv.leader("primary").value == b"me"
            assert kv.proclaim(leading, "me-v2") and kv.leader("primary").value == b"me-v2"
        assert kv.leader("primary") is None


def test_the_asyncio_client_does_the_same(start_server):
    url = start_server().url

    async def main() -> list[bytes | None]:
        async with AsyncClient(url) as kv:
            start = await kv.put("a/x", "1")
            changes: list[bytes | None] = []

            async def follow() -> None:
                async for event in kv.watch(prefix="a/", from_revision=start):
                    changes.append(event.value)
                    if len(changes) == 3:
                        return

            task = asyncio.create_task(follow())
            await kv.put("a/y", "2")
            async with kv.lock("job", ttl_ms=1000) as hold:
                await asyncio.sleep(2.0)  # past the TTL: the keep-alive task holds it
                assert (await kv.lock_holder("job")).token == hold.token
            await kv.put("a/z", "3")
            await asyncio.wait_for(task, 10)
            assert await kv.lock_holder("job") is None
            return changes

    assert asyncio.run(main()) == [b"1", b"2", b"3"]


def raftkv(*args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raftkv", *args], capture_output=True,
                          text=True, timeout=timeout_s, cwd=ROOT)


def test_the_cli_watches_leases_locks_and_elects(start_server):
    url = start_server().url
    watch = subprocess.Popen([sys.executable, "-m", "raftkv", "watch", "jobs/", "--count", "2",
                              "--url", url], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(1.0)
    granted = raftkv("lease", "grant", "30", "--url", url)
    assert granted.returncode == 0, granted.stderr
    lease = int(granted.stdout)
    assert raftkv("put", "jobs/1", "a", "--lease", str(lease), "--url", url).returncode == 0
    assert raftkv("put", "jobs/2", "b", "--url", url).returncode == 0
    out, _ = watch.communicate(timeout=20)
    lines = [line.split("\t") for line in out.splitlines()]
    assert [(kind, key, value) for _, kind, key, value in lines] == [
        ("put", "jobs/1", "a"), ("put", "jobs/2", "b")]
    assert raftkv("lease", "keepalive", str(lease), "--once", "--url", url).returncode == 0
    assert "jobs/1" in raftkv("lease", "show", str(lease), "--url", url).stdout
    assert raftkv("lease", "revoke", str(lease), "--url", url).returncode == 0
    assert raftkv("get", "jobs/1", "--url", url).returncode == 1
    assert raftkv("lease", "revoke", str(lease), "--url", url).returncode == 1

    locked = raftkv("lock", "nightly", "--url", url, "--", sys.executable, "-c",
                    "import os; print(os.environ['RAFTKV_LOCK_TOKEN']); raise SystemExit(3)")
    assert locked.returncode == 3 and int(locked.stdout) > 0
    elected = raftkv("elect", "primary", "node-a", "--url", url, "--", sys.executable, "-c",
                     "import os; print(os.environ['RAFTKV_ELECTION_TOKEN'])")
    assert elected.returncode == 0 and "leading primary" in elected.stdout
    assert raftkv("lock", "nightly", "--url", url).returncode == 2  # no command
    assert raftkv("lease", "grant", "-1", "--url", url).returncode == 2
