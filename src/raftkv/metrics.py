"""Prometheus metrics of one node, in its own registry, served at /metrics.

Labels are bounded: route templates (never raw paths), a fixed set of methods,
status codes. Recording a request is one dict lookup and three list updates in a
cell of plain numbers (no lock: it runs on the event loop only); the cells become
Prometheus families at scrape time, as do gauges that mirror state (keys, Raft
indexes)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from raftkv.core.state_machine import StateMachine
from raftkv.service.ports import ReplicaStatus

_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH"})
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0)


class Metrics:
    def __init__(self, state_machine: Callable[[], StateMachine],
                 status: Callable[[], ReplicaStatus], in_flight: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = _RequestCollector()
        r.register(self.requests)
        in_flight_gauge = Gauge("raftkv_http_requests_in_flight", "HTTP requests in progress",
                                registry=r)
        in_flight_gauge.set_function(in_flight)
        self.wal_fsync = Histogram("raftkv_wal_fsync_duration_seconds",
                                   "WAL write+fsync latency per batch", buckets=_LATENCY_BUCKETS,
                                   registry=r)
        self.wal_records_per_fsync = Histogram(
            "raftkv_wal_records_per_fsync", "records covered by one fsync (group commit)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024), registry=r)
        self.wal_appends = Counter("raftkv_wal_appends_total", "records appended to the WAL",
                                   registry=r)
        self.snapshot_seconds = Histogram("raftkv_snapshot_duration_seconds",
                                          "time to write a snapshot", registry=r)
        self.snapshot_bytes = Gauge("raftkv_snapshot_size_bytes", "size of the last snapshot",
                                    registry=r)
        self.resp_commands = Counter("raftkv_resp_commands_total", "RESP commands processed",
                                     registry=r)
        r.register(_StateCollector(state_machine, status))
        self.observe_request = self.requests.observe

    def observe_wal_batch(self, fsync_seconds: float | None, records: int) -> None:
        """A WAL batch was written (and fsynced, when ``fsync_seconds`` is given). Called
        from the WAL's I/O thread under ``always`` (prometheus_client is thread-safe)."""
        self.wal_appends.inc(records)
        if fsync_seconds is not None:
            self.wal_fsync.observe(fsync_seconds)
            self.wal_records_per_fsync.observe(records)

    def exposition(self) -> tuple[bytes, bytes]:
        return CONTENT_TYPE_LATEST.encode(), generate_latest(self.registry)


class _RequestCollector:
    """HTTP request count and latency histogram by route, method and status."""

    def __init__(self) -> None:
        # (route, method, status) -> [count, sum of seconds, per-bucket counts (+Inf last)]
        self._cells: dict[tuple[str, bytes, int], list] = {}  # type: ignore[type-arg]

    def observe(self, route: str, method: bytes, status: int, seconds: float) -> None:
        cell = self._cells.get((route, method, status))
        if cell is None:
            cell = self._cells[(route, method, status)] = [0, 0.0,
                                                           [0] * (len(_LATENCY_BUCKETS) + 1)]
        cell[0] += 1
        cell[1] += seconds
        cell[2][bisect_left(_LATENCY_BUCKETS, seconds)] += 1

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        names = ["route", "method", "status"]
        requests = CounterMetricFamily("raftkv_http_requests", "HTTP requests answered",
                                       labels=names)
        latency = HistogramMetricFamily("raftkv_http_request_duration_seconds",
                                        "HTTP request latency", labels=names)
        merged: dict[tuple[str, str, str], list] = {}  # type: ignore[type-arg]
        for (route, method, status), (count, total, buckets) in list(self._cells.items()):
            name = method.decode("latin-1")
            labels = (route or "unmatched", name if name in _METHODS else "OTHER", str(status))
            into = merged.setdefault(labels, [0, 0.0, [0] * len(buckets)])
            into[0] += count
            into[1] += total
            into[2] = [a + b for a, b in zip(into[2], buckets, strict=True)]
        for labels, (count, total, buckets) in merged.items():
            requests.add_metric(list(labels), count)
            cumulative, running = [], 0
            for bound, n in zip((*map(str, _LATENCY_BUCKETS), "+Inf"), buckets, strict=True):
                running += n
                cumulative.append((bound, running))
            latency.add_metric(list(labels), cumulative, total)
        yield requests
        yield latency


class _StateCollector:
    """Keys, bytes, expirations, evictions and Raft progress, read at scrape time."""

    def __init__(self, state_machine: Callable[[], StateMachine],
                 status: Callable[[], ReplicaStatus]) -> None:
        self.state_machine = state_machine
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        sm = self.state_machine()
        s = self.status()
        yield GaugeMetricFamily("raftkv_keys", "keys stored (expired ones not yet collected "
                                "included)", value=len(sm.keyspace))
        yield GaugeMetricFamily("raftkv_data_bytes", "bytes of keys and values",
                                value=sm.keyspace.data_bytes)
        yield CounterMetricFamily("raftkv_expired_keys", "keys deleted by expiry",
                                  value=sm.expired_total)
        yield CounterMetricFamily("raftkv_evicted_keys", "keys deleted by eviction",
                                  value=sm.evicted_total)
        yield GaugeMetricFamily("raftkv_raft_term", "current term", value=s.term)
        yield GaugeMetricFamily("raftkv_raft_commit_index", "highest committed index",
                                value=s.commit_index)
        yield GaugeMetricFamily("raftkv_raft_applied_index", "highest applied index",
                                value=s.applied_index)
        yield GaugeMetricFamily("raftkv_raft_is_leader", "1 when this node is the leader",
                                value=1 if s.role == "leader" else 0)
