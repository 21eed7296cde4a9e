"""The client commands against a real node: exit 0 / 1 / 2 as CONTRACT.md says."""

from __future__ import annotations

import subprocess
import sys

from tests.support.node import ROOT


def raftkv(server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raftkv", *args, "--url", server.url],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)


def test_put_get_list_delete_health(server):
    assert raftkv(server, "put", "dir/a", "1").returncode == 0
    assert raftkv(server, "put", "dir/b", "two words", "--ttl", "60").returncode == 0
    got = raftkv(server, "get", "dir/b")
    assert (got.returncode, got.stdout) == (0, "two words\n")
    listed = raftkv(server, "list", "--prefix", "dir/")
    assert listed.stdout.splitlines() == ["dir/a\t1", "dir/b\ttwo words"]
    assert raftkv(server, "delete", "dir/a").returncode == 0
    missing = raftkv(server, "get", "dir/a")
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert raftkv(server, "delete", "dir/a").returncode == 1
    health = raftkv(server, "health")
    assert health.returncode == 0 and '"state": "leader"' in health.stdout


def test_usage_errors_exit_2(server):
    assert raftkv(server, "put", "onlykey").returncode == 2
    assert raftkv(server, "put", "k", "v", "--ttl", "-1").returncode == 2
    assert subprocess.run([sys.executable, "-m", "raftkv", "frobnicate"], cwd=ROOT,
                          capture_output=True).returncode == 2


def test_an_unreachable_server_exits_1():
    result = subprocess.run([sys.executable, "-m", "raftkv", "get", "k", "--url",
                             "http://127.0.0.1:9"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and "cannot reach" in result.stderr


def test_bench_runs_against_a_node_closed_and_open_loop(server):
    import json

    for extra in (["--workload", "mixed", "--requests", "300"],
                  ["--workload", "cas", "--rate", "200", "--duration", "1"]):
        result = raftkv(server, "bench", "--keys", "20", "--connections", "4", "--json", *extra)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["ok"] > 100 and summary["errors"] == {}
        assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["max"]
    bad = raftkv(server, "bench", "--connections", "0")
    assert bad.returncode == 2


def test_bench_drives_the_redis_port_with_pipelining(start_server):
    import json

    node = start_server(resp=True)
    result = subprocess.run(
        [sys.executable, "-m", "raftkv", "bench", "--url", f"http://127.0.0.1:{node.resp_port}",
         "--protocol", "resp", "--pipeline", "8", "--workload", "mixed", "--keys", "50",
         "--connections", "4", "--requests", "800", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["requests"] == 800 and summary["ok"] == 800
