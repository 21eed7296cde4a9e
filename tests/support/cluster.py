"""Real ``raftkv serve`` clusters for tests: N processes started exactly as the README
says (NODE_ID, PORT, PEERS in the environment), always stopped by PID at the end."""

from __future__ import annotations

import contextlib
import signal
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support.netproxy import ProxyNet
from tests.support.node import ServerProcess, free_port


class Cluster:
    def __init__(self, root: Path, size: int = 3, *args: str, resp: bool = False,
                 env: dict[str, str] | None = None, proxies: ProxyNet | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.tls = tls  # the nodes serve TLS (peers dial https://): how to verify them
        self.args = args
        self.resp = resp
        self.env = env or {}
        self.nodes: dict[str, ServerProcess] = {}
        ids = [f"n{i}" for i in range(1, size + 1)]
        ports = {node_id: free_port() for node_id in ids}
        while len(set(ports.values())) < size:
            ports = {node_id: free_port() for node_id in ids}
        self.ports = ports
        # How each node reaches the others: directly, or through a proxy per directed link.
        self.proxies = proxies
        self.peer_urls: dict[str, str] = {}
        if proxies is not None:
            for a in ids:
                for b in ids:
                    if a != b:
                        port = proxies.add(f"{a}->{b}", ports[b])
                        self.peer_urls[f"{a}->{b}"] = f"http://127.0.0.1:{port}"
        for node_id in ids:
            self.nodes[node_id] = self._process(node_id, [n for n in ids if n != node_id])

    def _process(self, node_id: str, peers: list[str]) -> ServerProcess:
        scheme = "https" if self.tls else "http"
        urls = ",".join(self.peer_urls.get(f"{node_id}->{p}",
                                           f"{scheme}://127.0.0.1:{self.ports[p]}")
                        for p in peers)
        env = {"NODE_ID": node_id, "PEERS": urls, "RAFTKV_RAFT_TICK_MS": "50", **self.env}
        return ServerProcess(self.root / node_id, *self.args, env=env, port=self.ports[node_id],
                             resp=self.resp, tls=self.tls)

    def add_process(self, node_id: str, peers: list[str]) -> ServerProcess:
        """A new node (not yet a member) whose PEERS name ``peers``."""
        self.ports[node_id] = free_port()
        self.nodes[node_id] = self._process(node_id, peers)
        return self.nodes[node_id]

    def start(self, wait: bool = True) -> Cluster:
        for node in self.nodes.values():
            node.start(wait=False)
        if wait:
            for node in self.nodes.values():
                node.wait_ready(30)
        return self

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()

    def running(self) -> dict[str, ServerProcess]:
        return {n: p for n, p in self.nodes.items()
                if p.proc is not None and p.proc.poll() is None}

    def health(self) -> dict[str, dict[str, Any]]:
        out = {}
        for node_id, node in self.running().items():
            try:
                out[node_id] = httpx.get(node.url + "/health", timeout=1,
                                         verify=self.tls or True).json()
            except httpx.HTTPError:
                continue
        return out

    def leader(self, timeout_s: float = 15.0, exclude: str | None = None) -> str:
        """The id every running node agrees leads (one leader, one term)."""
        return wait_for(lambda: self._agreed_leader(exclude), timeout_s, "an agreed leader")

    def _agreed_leader(self, exclude: str | None) -> str | None:
        health = self.health()
        leaders = {h["id"] for h in health.values() if h["state"] == "leader"}
        seen = {h["leaderId"] for h in health.values()}
        if len(leaders) == 1 and seen == leaders and len(health) == len(self.running()):
            (leader,) = leaders
            return None if leader == exclude else leader
        return None

    def followers(self) -> list[str]:
        leader = self.leader()
        return [n for n in self.running() if n != leader]

    def isolate(self, node_id: str) -> None:
        """Cut every link to and from ``node_id`` (clients still reach it)."""
        assert self.proxies is not None
        self.proxies.cut(*(name for name in self.peer_urls if node_id in name.split("->")))

    def heal(self) -> None:
        assert self.proxies is not None
        self.proxies.heal()

    def url(self, node_id: str) -> str:
        return self.nodes[node_id].url


@contextlib.contextmanager
def proxied_cluster(root: Path, size: int = 3, **kw: Any) -> Iterator[Cluster]:
    """A started cluster whose peer links run through proxies (to cut and heal); at
    the end every paused node is resumed and every node and proxy stopped."""
    proxies = ProxyNet()
    cluster = Cluster(root, size, proxies=proxies, **kw)
    try:
        yield cluster.start()
    finally:
        for node in cluster.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGCONT)
        cluster.stop()
        proxies.close()


def wait_for(probe: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
