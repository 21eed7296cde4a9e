"""HTTP request counts and latency by route, method and status, recorded on the
request path (compiled with it) and turned into Prometheus families at scrape time.

Labels are bounded: route templates (never raw paths), a fixed set of methods,
status codes. Recording a request is one dict lookup and three updates of a cell of
plain numbers, with no lock: it runs on the event loop only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

METHODS: Final = frozenset({"GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH"})
LATENCY_BUCKETS_S: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                            1.0, 2.5, 5.0)


class _Cell:
    __slots__ = ("buckets", "count", "total_s")

    def __init__(self) -> None:
        self.count = 0
        self.total_s = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)  # +Inf last


class RequestMetrics:
    """A Prometheus collector of the HTTP requests observed."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, bytes, int], _Cell] = {}

    def observe(self, route: str, method: bytes, status: int, seconds: float) -> None:
        cell = self._cells.get((route, method, status))
        if cell is None:
            cell = self._cells[(route, method, status)] = _Cell()
        cell.count += 1
        cell.total_s += seconds
        bucket = 0  # bisect_left, inline: most requests stop at the first bound
        for bound in LATENCY_BUCKETS_S:
            if seconds <= bound:
                break
            bucket += 1
        cell.buckets[bucket] += 1

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        names = ["route", "method", "status"]
        requests = CounterMetricFamily("raftkv_http_requests", "HTTP requests answered",
                                       labels=names)
        latency = HistogramMetricFamily("raftkv_http_request_duration_seconds",
                                        "HTTP request latency", labels=names)
        merged: dict[tuple[str, str, str], _Cell] = {}
        for (route, method, status), cell in list(self._cells.items()):
            name = method.decode("latin-1")
            labels = (route or "unmatched", name if name in METHODS else "OTHER", str(status))
            into = merged.setdefault(labels, _Cell())
            into.count += cell.count
            into.total_s += cell.total_s
            into.buckets = [a + b for a, b in zip(into.buckets, cell.buckets, strict=True)]
        for labels, cell in merged.items():
            requests.add_metric(list(labels), cell.count)
            cumulative: list[tuple[str, float]] = []
            running = 0
            for bound, n in zip((*map(str, LATENCY_BUCKETS_S), "+Inf"), cell.buckets,
                                strict=True):
                running += n
                cumulative.append((bound, running))
            latency.add_metric(list(labels), cumulative, cell.total_s)
        yield requests
        yield latency
