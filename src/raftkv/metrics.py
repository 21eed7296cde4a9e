"""Prometheus metrics of one node, in its own registry, served at /metrics.

HTTP requests are recorded on the request path (``fronts/http/request_metrics.py``);
gauges that mirror state (keys, Raft indexes) are read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from raftkv.core.state_machine import StateMachine
from raftkv.fronts.http.request_metrics import LATENCY_BUCKETS_S, RequestMetrics
from raftkv.service.ports import ReplicaStatus
from raftkv.tls import Certificate


class Metrics:
    def __init__(self, state_machine: Callable[[], StateMachine],
                 status: Callable[[], ReplicaStatus], in_flight: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = RequestMetrics()
        r.register(self.requests)
        in_flight_gauge = Gauge("raftkv_http_requests_in_flight", "HTTP requests in progress",
                                registry=r)
        in_flight_gauge.set_function(in_flight)
        self.wal_fsync = Histogram("raftkv_wal_fsync_duration_seconds",
                                   "WAL write+fsync latency per batch", buckets=LATENCY_BUCKETS_S,
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
        self.tls_expiry = Gauge("raftkv_tls_certificate_expiry_timestamp_seconds",
                                "when the certificate in use expires (Unix time)",
                                ["role"], registry=r)
        self.tls_reloads = Counter("raftkv_tls_reloads", "TLS file loads, by outcome",
                                   ["outcome"], registry=r)
        r.register(_StateCollector(state_machine, status))

    def observe_tls(self, certificates: Sequence[Certificate], ok: bool) -> None:
        """The TLS files were (re)loaded (``ok``), or a reload failed."""
        self.tls_reloads.labels("ok" if ok else "failed").inc()
        for cert in certificates:
            self.tls_expiry.labels(cert.role).set(cert.not_after_s)

    def observe_wal_batch(self, fsync_seconds: float | None, records: int) -> None:
        """A WAL batch was written (and fsynced, when ``fsync_seconds`` is given). Called
        from the WAL's I/O thread under ``always`` (prometheus_client is thread-safe)."""
        self.wal_appends.inc(records)
        if fsync_seconds is not None:
            self.wal_fsync.observe(fsync_seconds)
            self.wal_records_per_fsync.observe(records)

    def exposition(self) -> tuple[bytes, bytes]:
        return CONTENT_TYPE_LATEST.encode(), generate_latest(self.registry)


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
