"""Token buckets: per client address, per token, and a tight one for failed logins.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; a request takes
one. When empty, the caller is told how long until the next token (Retry-After).
Buckets idle long enough to be full again are dropped, so memory stays bounded by
the number of recently active clients."""

from __future__ import annotations

from collections.abc import Callable


class TokenBuckets:
    __slots__ = ("_buckets", "_clock", "_last_sweep", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._last_sweep = clock()

    def take(self, key: str) -> float:
        """0.0 when a token was taken, else the seconds until one is available."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate_per_s)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            self._maybe_sweep(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate_per_s

    def _maybe_sweep(self, now: float) -> None:
        if now - self._last_sweep < 10.0:
            return
        self._last_sweep = now
        full_after = self.burst / self.rate_per_s
        for key, (_, at) in list(self._buckets.items()):
            if now - at > full_after:
                del self._buckets[key]
