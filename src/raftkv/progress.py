"""A one-line progress bar on stderr for the long commands (backup, restore), drawn
only when stderr is a terminal and at most ten times a second."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    WIDTH = 30

    def __init__(self, label: str, total_bytes: int) -> None:
        self.label = label
        self.total_bytes = total_bytes  # 0: unknown
        self.done_bytes = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self.visible = sys.stderr.isatty()

    def advance(self, n_bytes: int) -> None:
        self.done_bytes += n_bytes
        now = time.monotonic()
        if self.visible and now - self._drawn >= 0.1:
            self._drawn = now
            self._draw(now)

    def finish(self) -> None:
        if self.visible:
            self._draw(time.monotonic())
            sys.stderr.write("\n")

    def _draw(self, now: float) -> None:
        mib = self.done_bytes / 2**20
        rate = mib / max(now - self.started, 1e-6)
        if self.total_bytes:
            filled = int(self.WIDTH * self.done_bytes / self.total_bytes)
            bar = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            of = f" / {self.total_bytes / 2**20:.1f}"
        else:
            bar, of = "", ""
        sys.stderr.write(f"\r{self.label} {bar}{mib:.1f}{of} MiB  {rate:.1f} MiB/s ")
        sys.stderr.flush()
