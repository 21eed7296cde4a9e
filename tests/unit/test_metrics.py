"""The request metrics: plain cells on the hot path, Prometheus families at scrape."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from raftkv.core.state_machine import StateMachine
from raftkv.metrics import Metrics
from raftkv.service.ports import ReplicaStatus


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    _, body = metrics.exposition()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def test_requests_become_a_counter_and_a_histogram_with_bounded_labels() -> None:
    sm = StateMachine()
    metrics = Metrics(lambda: sm, lambda: ReplicaStatus("n1", "leader", "n1", 1, 0, 0, None),
                      lambda: 0)
    for seconds in (0.0004, 0.003, 0.003, 2.0, 9.0):
        metrics.requests.observe("/v1/keys/{key...}", b"GET", 200, seconds)
    metrics.requests.observe("", b"BREW", 404, 0.001)  # unknown methods fold into OTHER
    metrics.requests.observe("", b"WHEN", 404, 0.001)
    got = _samples(metrics)
    labels = (("method", "GET"), ("route", "/v1/keys/{key...}"), ("status", "200"))
    assert got[("raftkv_http_requests_total", labels)] == 5
    hist = "raftkv_http_request_duration_seconds"

    def bucket(le: str) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((*labels, ("le", le))))

    assert got[(f"{hist}_count", labels)] == 5
    assert abs(got[(f"{hist}_sum", labels)] - 11.0064) < 1e-9
    assert got[(f"{hist}_bucket", bucket("0.0005"))] == 1
    assert got[(f"{hist}_bucket", bucket("0.005"))] == 3
    assert got[(f"{hist}_bucket", bucket("2.5"))] == 4
    assert got[(f"{hist}_bucket", bucket("+Inf"))] == 5
    other = (("method", "OTHER"), ("route", "unmatched"), ("status", "404"))
    assert got[("raftkv_http_requests_total", other)] == 2
