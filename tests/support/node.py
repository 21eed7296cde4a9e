"""Real ``raftkv serve`` processes for tests: start on free ports, wait until ready,
stop by PID (SIGTERM, then SIGKILL), always - even when the test fails."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free for both TCP and UDP, below the ephemeral range, and never one this
    test run handed out before: a port given to a node that has not bound it yet looks
    free too (a cluster's RESP port once matched another node's HTTP port, and the
    founding node waited 30 s for a peer that could not start)."""
    for _ in range(200):
        port = 20000 + int.from_bytes(os.urandom(2), "big") % 12000
        if port in _HANDED_OUT:
            continue
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port")


class ServerProcess:
    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None,
                 port: int | None = None, resp: bool = False,
                 tls: ssl.SSLContext | None = None) -> None:
        self.data_dir = data_dir
        self.tls = tls  # the node serves TLS: how to verify it (readiness, ``client``)
        self.args = list(args)
        self.env = env or {}
        self.port = port or free_port()
        self.resp_port = 0
        while resp and self.resp_port in (0, self.port):
            self.resp_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-{self.port}.log"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def client(self, **kwargs: object) -> httpx.Client:
        """An httpx client for this node (verifying its certificate when TLS is on)."""
        return httpx.Client(base_url=self.url, verify=self.tls or True, **kwargs)  # type: ignore[arg-type]

    def start(self, wait: bool = True) -> ServerProcess:
        env = dict(os.environ, **self.env)
        cmd = [sys.executable, "-m", "raftkv", "serve", "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--resp-port", str(self.resp_port),
               "--log-format", "json", *self.args]
        if getattr(self, "_log", None) is not None:
            self._log.close()  # from an earlier run of this process (a restart)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=self._log, env=env, cwd=ROOT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"raftkv exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=0.5,
                             verify=self.tls or True).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"raftkv not ready in {timeout_s}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.proc.returncode
