"""kill -9 and crash points in a real child process lose no acknowledged write.

A process crash keeps the page cache, so these tests cannot see a missing fsync;
the CrashFS tests (test_crash_states.py) carry the negative controls for that."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from raftkv.replication.replay import recover
from raftkv.storage.fs import OsFileSystem

ROOT = Path(__file__).resolve().parents[2]


def run_child(data_dir: Path, start: int, *, kill_after_s: float | None,
              failpoints: str = "", fsync: str = "always") -> tuple[list[bytes], int]:
    """Run the writer child; return (acknowledged keys, exit status)."""
    env = dict(os.environ, RAFTKV_FAILPOINTS=failpoints, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.engine_child", str(data_dir), str(start),
         "--fsync", fsync],
        stdout=subprocess.PIPE, env=env, cwd=ROOT)
    acked: list[bytes] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith(b"ACK "):
                acked.append(line[4:].strip())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        if kill_after_s is not None:
            time.sleep(kill_after_s)
            child.send_signal(signal.SIGKILL)
        status = child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        reader.join()
        assert child.stdout is not None
        child.stdout.close()
    return acked, status


def missing_after_recovery(data_dir: Path, acked: list[bytes]) -> list[bytes]:
    keyspace = recover(OsFileSystem(), str(data_dir)).state_machine.keyspace
    return [key for key in acked if keyspace.raw(key) is None]


def test_kill_9_at_random_moments_loses_no_acknowledged_write(tmp_path):
    rng = random.Random(2026)
    all_acked: list[bytes] = []
    start = 0
    for _cycle in range(20):
        acked, status = run_child(tmp_path, start, kill_after_s=rng.uniform(0.3, 0.9))
        assert status == -signal.SIGKILL
        all_acked += acked
        start += 1_000_000
        assert missing_after_recovery(tmp_path, all_acked) == []
    assert len(all_acked) > 1000  # the test really wrote under load
    print(f"\n20 kill -9 cycles, {len(all_acked)} acknowledged writes, 0 lost")


CRASH_POINTS = [
    "wal.before_write", "wal.after_write", "wal.before_fsync", "wal.after_fsync",
    "snapshot.before_fsync", "snapshot.before_rename", "snapshot.before_dir_fsync",
    "snapshot.after_dir_fsync", "wal.before_truncate",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_at_each_persistence_boundary_loses_nothing_acknowledged(tmp_path, point):
    all_acked: list[bytes] = []
    for cycle, nth in enumerate((3, 40, 2)):
        acked, status = run_child(tmp_path, cycle * 1_000_000, kill_after_s=None,
                                  failpoints=f"{point}=exit@{nth}")
        assert status == 137, f"the failpoint {point} was never reached"
        all_acked += acked
        assert missing_after_recovery(tmp_path, all_acked) == []
