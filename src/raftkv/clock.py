"""Clocks. Wall time for deadlines (``expiresAtMs`` is Unix epoch ms, like Redis's
PXAT), monotonic time for timeouts. Tests inject :class:`ManualClock`."""

from __future__ import annotations

import time
from typing import Final, Protocol

_time_ns: Final = time.time_ns  # (compiled: a C static, not a module lookup per call)


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock Unix time in milliseconds."""

    def monotonic_s(self) -> float: ...


class SystemClock:
    def now_ms(self) -> int:
        return _time_ns() // 1_000_000

    def monotonic_s(self) -> float:
        return time.monotonic()


class ManualClock:
    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = now_ms
        self._mono = 0.0

    def now_ms(self) -> int:
        return self._now_ms

    def monotonic_s(self) -> float:
        return self._mono

    def advance_ms(self, ms: int) -> None:
        self._now_ms += ms
        self._mono += ms / 1000
