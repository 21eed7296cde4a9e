"""How long a newcomer waits: a fresh clone of this repository, ``make run``, until
``/health`` answers (the venv, the dependencies and the compile included).

    python -m benchmarks.first_run            # prints the seconds

It clones HEAD into a temporary directory and serves on a free port, so it neither
touches this checkout's ``.venv`` nor needs 8080. pip's cache is whatever this
machine's is (CI's machine is this one).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.support.node import free_port

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900


def first_run_s() -> float:
    work = Path(tempfile.mkdtemp(prefix="raftkv-first-run-"))
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(work / "raftkv")], check=True)
        port = free_port()
        env = dict(os.environ, RAFTKV_PORT=str(port), RAFTKV_RESP_PORT="0",
                   RAFTKV_UDP_PORT="0")
        started = time.monotonic()
        proc = subprocess.Popen(["make", "run"], cwd=work / "raftkv", env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            while time.monotonic() - started < TIMEOUT_S:
                if proc.poll() is not None:
                    raise RuntimeError(f"make run exited with {proc.returncode}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                        return time.monotonic() - started
                except OSError:
                    if sys.stderr.isatty():
                        elapsed = int(time.monotonic() - started)
                        print(f"\rwaiting for /health: {elapsed} s", end="", file=sys.stderr)
                    time.sleep(0.5)
            raise TimeoutError(f"/health did not answer in {TIMEOUT_S} s")
        finally:
            if sys.stderr.isatty():
                print(file=sys.stderr)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print(f"first make run of a fresh clone -> /health: {first_run_s():.1f} s")
