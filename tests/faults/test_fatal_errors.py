"""A node whose log can no longer be written stops: exit status 1, the reason logged
once (ARCHITECTURE.md rule 6) - never a process that keeps answering while the part
that makes writes durable is dead. The disk failure is planted with a failpoint
(``wal.before_fsync=eio@N``: every fsync from the N-th on fails with EIO)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import Cluster, wait_for
from tests.support.node import ServerProcess


def _critical_lines(node: ServerProcess) -> list[dict]:
    lines = []
    for line in node.logs().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("level") == "critical":
            lines.append(record)
    return lines


def _write_until_refused(url: str, attempts: int = 50) -> int:
    acked = 0
    for i in range(attempts):
        try:
            r = httpx.put(f"{url}/v1/keys/k{i}", json={"value": "v"}, timeout=5)
        except httpx.HTTPError:
            break
        if r.status_code >= 500:
            break
        acked += 1
    return acked


@pytest.mark.timeout(60)
def test_a_single_node_whose_fsync_fails_exits_1_and_says_why_once(tmp_path: Path) -> None:
    node = ServerProcess(tmp_path / "data", env={"RAFTKV_FAILPOINTS": "wal.before_fsync=eio@5"})
    try:
        node.start()
        acked = _write_until_refused(node.url)
        assert acked < 5  # the fifth fsync failed: nothing after it was acknowledged
        assert node.wait(20) == 1
        critical = _critical_lines(node)
        assert len(critical) == 1, critical
        assert "write-ahead log failed" in critical[0]["msg"]
    finally:
        node.stop()


@pytest.mark.timeout(120)
def test_a_cluster_member_whose_raft_log_fails_exits_1_and_the_others_go_on(
        tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3)
    failing = cluster.nodes["n1"]
    failing.env["RAFTKV_FAILPOINTS"] = "wal.before_fsync=eio@40"
    try:
        cluster.start()
        other = cluster.url("n2")
        for i in range(300):  # every member fsyncs each append: n1 reaches its 40th
            if failing.proc is not None and failing.proc.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                httpx.put(f"{other}/v1/keys/k{i}", json={"value": "v"}, timeout=5)
        assert failing.wait(30) == 1
        critical = _critical_lines(failing)
        assert len(critical) == 1 and "planted I/O error" in critical[0]["msg"], critical
        wait_for(lambda: cluster.leader() in ("n2", "n3"), 15, "a leader among the others")
        r = httpx.put(f"{other}/v1/keys/after", json={"value": "1"}, timeout=10)
        assert r.status_code in (200, 201), r.text
    finally:
        cluster.stop()
