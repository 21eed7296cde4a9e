"""The CPU-per-request benchmark reads a process's own CPU time from /proc, split
into user and kernel time, and divides it by the requests its load made."""

import subprocess
import sys
import time

from benchmarks.cpu_per_request import cpu_seconds, per_request


def test_a_busy_child_shows_user_time_and_a_sleeping_one_none():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)  # both past start-up
        idle_before = cpu_seconds(idle.pid)
        requests, user_us, kernel_us = per_request(busy.pid, lambda: time.sleep(0.5) or 1000)
        idle_after = cpu_seconds(idle.pid)
    finally:
        for proc in (busy, idle):
            proc.kill()
            proc.wait()
    assert requests == 1000
    assert user_us >= 100  # at least 0.1 s of user time over 1,000 "requests"
    assert kernel_us >= 0
    assert idle_after[0] - idle_before[0] < 0.05  # a sleeping process gains (almost) none
