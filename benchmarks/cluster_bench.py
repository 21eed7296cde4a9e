"""Three raftkv nodes against three etcd 3.4 members, on loopback, side by side.

* replicated durable writes (``--fsync always``; etcd always fsyncs) and
  linearizable reads, 50 wrk connections to the leader, servers on core 0; both
  clusters run for the whole round and take turns in short bursts;
* leader failover: kill -9 the leader, time until a write succeeds through a
  surviving node (each cluster's trials in turn; the distribution is printed);
* a fourth raftkv node catching up a large data set by snapshot (raftkv alone).
"""

from __future__ import annotations

import base64
import functools
import signal
import ssl
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from benchmarks.common import (
    SERVER_CPU,
    Proc,
    Row,
    bursts,
    free_port,
    in_turns,
    pinned,
    scratch_dir,
    wait_port,
)
from benchmarks.http_bench import _lua, _preload_etcd, _preload_raftkv, wrk

NODES = 3
# A failover probe write is abandoned after this long and sent again. etcd holds a
# write while it has no leader (raftkv answers 503 at once), so a long timeout would
# quantize etcd's times into steps of the timeout (seen at 0.5 s: 1.09 s or 1.62 s).
PROBE_TIMEOUT_S = 0.1


class _Members:
    """Three server processes by name, each killed or stopped by PID."""

    procs: dict[str, Proc]

    @functools.cached_property
    def probe(self) -> httpx.Client:
        """The failover probes' client. It keeps its connections to the survivors: a new
        connection per probe would add milliseconds of client work to each measured time."""
        return httpx.Client(timeout=PROBE_TIMEOUT_S)

    def kill(self, node: str) -> None:
        proc = self.procs.pop(node)
        proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait()
        proc.log.close()

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        self.probe.close()

    def leader(self) -> str:
        raise NotImplementedError

    def indexes(self, node: str) -> tuple[int, int]:
        """``node``'s (applied, committed) log indexes."""
        raise NotImplementedError

    def wait_caught_up(self, node: str, timeout_s: float = 60.0) -> None:
        """Wait until ``node`` has applied all the leader had committed when asked. A
        trial started sooner kills the leader while one survivor is still catching up:
        etcd then took 3-7 s to fail over instead of 1-2 s."""
        committed = self.indexes(self.leader())[1]
        deadline = time.monotonic() + timeout_s
        while self.indexes(node)[0] < committed:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node} did not catch up to index {committed}")
            time.sleep(0.01)


class RaftkvCluster(_Members):
    def __init__(self, work: Path, resp: bool = False,
                 args: Callable[[str], list[str]] = lambda node: [],
                 tls: ssl.SSLContext | None = None) -> None:
        """``args``: a node's extra ``serve`` flags; ``tls``: the nodes serve https,
        verified with this context."""
        self.work = work
        self.args = args
        self.tls = tls
        self.ids = [f"n{i + 1}" for i in range(NODES)]
        self.ports = {n: free_port() for n in self.ids}
        self.resp_ports = {n: free_port() for n in self.ids} if resp else {}
        self.procs: dict[str, Proc] = {}
        for node in self.ids:
            self.start(node)
        for node in self.ids:
            self.wait_ready(node)

    def url(self, node: str) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.ports[node]}"

    def start(self, node: str, peers: list[str] | None = None) -> None:
        peers = peers if peers is not None else [n for n in self.ids if n != node]
        env = {"NODE_ID": node, "PEERS": ",".join(self.url(p) for p in peers)}
        cmd = [sys.executable, "-m", "raftkv", "serve", "--data-dir", str(self.work / node),
               "--port", str(self.ports[node]), "--log-format", "json",
               "--resp-port", str(self.resp_ports.get(node, 0)), *self.args(node)]
        self.procs[node] = Proc(pinned(SERVER_CPU, cmd), env=env,
                                log=self.work / f"{node}.log")

    def wait_ready(self, node: str, timeout_s: float = 60.0) -> None:
        wait_port(self.ports[node])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url(node) + "/readyz", timeout=1,
                             verify=self.tls or True).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"raftkv {node} not ready")

    def leader(self) -> str:
        while True:
            for node in self.procs:
                try:
                    leader = httpx.get(self.url(node) + "/health", timeout=1,
                                       verify=self.tls or True).json()["leaderId"]
                except httpx.HTTPError:
                    continue
                if leader in self.procs:
                    return str(leader)
            time.sleep(0.05)

    def indexes(self, node: str) -> tuple[int, int]:
        health = httpx.get(self.url(node) + "/health", timeout=1).json()
        return health["appliedIndex"], health["commitIndex"]

    def write_ok(self, node: str) -> bool:
        try:
            r = self.probe.put(self.url(node) + "/v1/keys/failover", json={"value": "x"})
        except httpx.HTTPError:
            return False
        return r.status_code in (200, 201)



class EtcdCluster(_Members):
    def __init__(self, work: Path) -> None:
        self.work = work
        self.ids = [f"e{i + 1}" for i in range(NODES)]
        self.client = {n: free_port() for n in self.ids}
        self.peer = {n: free_port() for n in self.ids}
        self.initial = ",".join(f"{n}=http://127.0.0.1:{self.peer[n]}" for n in self.ids)
        self.procs: dict[str, Proc] = {}
        for node in self.ids:
            self.start(node, "new")
        for node in self.ids:
            wait_port(self.client[node])
        self.leader()

    def url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.client[node]}"

    def start(self, node: str, state: str = "existing") -> None:
        cmd = ["etcd", "--data-dir", str(self.work / node), "--name", node,
               "--listen-client-urls", self.url(node), "--advertise-client-urls", self.url(node),
               "--listen-peer-urls", f"http://127.0.0.1:{self.peer[node]}",
               "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[node]}",
               "--initial-cluster", self.initial, "--initial-cluster-state", state,
               "--initial-cluster-token", "bench", "--log-level", "error"]
        self.procs[node] = Proc(pinned(SERVER_CPU, cmd), env={"GOMAXPROCS": "1"},
                                log=self.work / f"{node}.log")

    def wait_ready(self, node: str) -> None:
        wait_port(self.client[node])
        self.leader()

    def leader(self) -> str:
        while True:
            for node in self.procs:
                try:
                    status = httpx.post(self.url(node) + "/v3/maintenance/status", json={},
                                        timeout=1).json()
                except (httpx.HTTPError, ValueError):
                    continue
                if status.get("leader") and status["leader"] == status["header"]["member_id"]:
                    return node
            time.sleep(0.05)

    def indexes(self, node: str) -> tuple[int, int]:
        status = httpx.post(self.url(node) + "/v3/maintenance/status", json={}, timeout=1).json()
        return int(status["raftAppliedIndex"]), int(status["raftIndex"])

    def write_ok(self, node: str) -> bool:
        key = base64.b64encode(b"failover").decode()
        try:
            r = self.probe.post(self.url(node) + "/v3/kv/put",
                                json={"key": key, "value": "eA=="})
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and "error" not in r.json()



def failover_s(cluster: RaftkvCluster | EtcdCluster) -> float:
    """kill -9 the leader; seconds until a write through a surviving node succeeds."""
    leader = cluster.leader()
    cluster.kill(leader)
    started = time.monotonic()
    survivors = list(cluster.procs)
    while time.monotonic() - started < 30:
        for node in survivors:
            if cluster.write_ok(node):
                elapsed = time.monotonic() - started
                cluster.start(leader)
                cluster.wait_ready(leader)
                cluster.wait_caught_up(leader)
                return elapsed
        time.sleep(0.001)
    raise TimeoutError("no write succeeded within 30 s of the failover")


def snapshot_catch_up_s(keys: int, progress) -> float:
    """Load ``keys`` into three nodes, compact, add a fourth: seconds until it serves."""
    work = scratch_dir("catchup")
    cluster = RaftkvCluster(work, resp=True)
    try:
        leader = cluster.leader()
        client = redis.Redis(port=cluster.resp_ports[leader])
        batch = 1000
        for start in range(0, keys, batch * 20):
            pipe = client.pipeline(transaction=False)
            for lo in range(start, min(start + batch * 20, keys), batch):
                pipe.mset({f"key{i:08d}": "v" * 16 for i in range(lo, min(lo + batch, keys))})
            pipe.execute()
        client.close()
        for node in cluster.ids:
            httpx.post(cluster.url(node) + "/v1/admin/snapshot", timeout=300)
        cluster.ports["n4"] = free_port()
        cluster.start("n4", peers=cluster.ids)
        wait_port(cluster.ports["n4"])
        started = time.monotonic()
        added = httpx.post(cluster.url(cluster.leader()) + "/v1/cluster/members",
                           json={"id": "n4"}, timeout=30)
        if added.status_code != 201:
            raise RuntimeError(f"adding n4 failed: {added.status_code} {added.text}")
        cluster.wait_ready("n4", timeout_s=600)
        elapsed = time.monotonic() - started
        stored = httpx.get(cluster.url("n4") + "/v1/keys?consistency=stale&limit=1&prefix="
                           f"key{keys - 1:08d}").json()["items"]
        if len(stored) != 1:
            raise AssertionError("the new node is ready but lacks the last key loaded")
        progress.step(f"cluster: n4 caught up {keys:,} keys in {elapsed:.1f}s")
        return elapsed
    finally:
        cluster.stop()


def run(quick: bool, rounds: int, progress) -> list[Row]:
    rows: list[Row] = []
    count, seconds = bursts(quick)
    trials = 3 if quick else 40
    for r in range(rounds):
        progress.step(f"cluster: starting raftkv x{NODES} and etcd x{NODES}, round {r + 1}")
        clusters: dict[str, RaftkvCluster | EtcdCluster] = {}
        try:
            clusters["raftkv"] = RaftkvCluster(scratch_dir("cluster-raftkv"))
            clusters["etcd"] = EtcdCluster(scratch_dir("cluster-etcd"))
            urls = {system: c.url(c.leader()) for system, c in clusters.items()}
            _preload_raftkv(urls["raftkv"])
            _preload_etcd(urls["etcd"])
            for b in range(count):  # the two clusters take turns, burst by burst
                progress.step(f"cluster: pair {b + 1}/{count}, round {r + 1}")
                for kind, label in (("put", "3 nodes: PUT, durable"),
                                    ("get", "3 nodes: linearizable GET"),
                                    ("txn", "3 nodes: txn (a compare, 4 puts), durable")):
                    for system, cluster in in_turns(b, list(clusters.items())):
                        figures = wrk(urls[system], _lua(kind, system), seconds, cluster.work)
                        rows.append(Row("cluster", label, system, figures["rps"], "req/s",
                                        r * count + b, extra=figures))
            for system, cluster in clusters.items():
                progress.step(f"cluster: {system} failovers, round {r + 1}")
                times = []
                for t in range(trials):
                    times.append(failover_s(cluster))
                    rows.append(Row("cluster", "failover: kill -9 leader -> first write",
                                    system, times[-1], "s", r * trials + t,
                                    higher_is_better=False, paired=False))
                times.sort()
                print(f"\n{system} failover over {trials} trials (s): "
                      f"{' '.join(f'{t:.3g}' for t in times)}; median "
                      f"{statistics.median(times):.3g}", file=sys.stderr)
        finally:
            for cluster in clusters.values():
                cluster.stop()
    seconds_taken = snapshot_catch_up_s(100_000 if quick else 1_000_000, progress)
    rows.append(Row("cluster", f"4th node catches up {100_000 if quick else 1_000_000:,} keys "
                    "by snapshot", "raftkv", seconds_taken, "s", 0, higher_is_better=False))
    return rows
