"""Shared pieces of the benchmark programs: pinned processes, ports, progress, rows."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
SERVER_CPU = "0"
CLIENT_CPU = "1"


@dataclass
class Row:
    """One measurement: a workload on a system in one round."""

    suite: str
    workload: str
    system: str  # "raftkv" or the anchor's name
    value: float
    unit: str
    round: int = 0
    higher_is_better: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    # False when the systems' measurements are independent trials, not bursts taken
    # in turns (failover times): the ratio is then of the medians, not of the pairs.
    paired: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bursts(quick: bool) -> tuple[int, int]:
    """(bursts per round, seconds per burst) for suites that alternate two servers.

    Both servers run for the whole round and take turns, one short burst each, so a
    slow minute of this shared machine hits both sides of a pair: a pair's ratio is
    steadier than two long runs minutes apart, and the median pair steadier still."""
    return (4, 1) if quick else (8, 2)


def in_turns(pair: int, systems: Sequence[T]) -> list[T]:
    """The order a pair's bursts run in, reversed every other pair (A B, B A, A B...):
    neither side always runs first, on a machine a burst has just warmed (or slowed)."""
    return list(systems) if pair % 2 == 0 else list(reversed(systems))


def pinned(cpu: str, cmd: Sequence[str]) -> list[str]:
    """Pin to one core where taskset exists (servers on core 0, load on core 1)."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", cpu, *cmd]
    return list(cmd)


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port never handed out before in this run (one given to a server that
    has not bound it yet still looks free)."""
    for _ in range(100):
        port = 20000 + int.from_bytes(os.urandom(2), "big") % 12000
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port")


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


class Proc:
    """A server process started for a benchmark and always stopped by PID."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str] | None = None,
                 log: Path | None = None) -> None:
        self.log = open(log or os.devnull, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(list(cmd), stdout=self.log, stderr=self.log,
                                     env=dict(os.environ, **(env or {})), cwd=ROOT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def raftkv_server(data_dir: Path, port: int, *args: str) -> Proc:
    cmd = pinned(SERVER_CPU, [sys.executable, "-m", "raftkv", "serve", "--data-dir",
                              str(data_dir), "--port", str(port), "--log-format", "json", *args])
    proc = Proc(cmd, log=data_dir.parent / f"raftkv-{port}.log")
    wait_port(port)
    return proc


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"raftkv-bench-{prefix}-"))


class Progress:
    """A one-line progress bar on stderr: what runs now, how far along the suite is."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.started = time.monotonic()

    def step(self, label: str) -> None:
        self.done += 1
        filled = int(30 * self.done / self.total)
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
                         f"{elapsed:5.0f}s  {label[:60]:<60}")
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\n")
