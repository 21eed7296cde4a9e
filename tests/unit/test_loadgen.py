"""raftkv bench's parts: scheduling, histogram merging, error classes, key choice."""

import random

from raftkv.loadgen import BenchResult, KeyChooser, classify, schedule


def test_open_loop_schedules_requests_at_the_rate_not_at_the_server_pace():
    times = schedule(rate=200.0, start=10.0, count=5)
    assert times == [10.0, 10.005, 10.01, 10.015, 10.02]


def test_histograms_merge_counts_and_percentiles():
    a, b = BenchResult(), BenchResult()
    for us in (100, 200, 300):
        a.histogram.record_value(us)
    b.histogram.record_value(10_000)
    a.ok, b.ok = 3, 1
    b.errors["http_5xx"] += 2
    a.merge(b)
    a.elapsed_s = 2.0
    summary = a.summary()
    assert summary["requests"] == 6 and summary["ok"] == 4
    assert summary["errors"] == {"http_5xx": 2} and summary["throughput_rps"] == 3.0
    assert summary["latency_ms"]["max"] >= 9.9 and summary["latency_ms"]["p50"] <= 0.301


def test_error_classes():
    assert classify(200) is None and classify(201) is None
    assert classify(404) is None and classify(412) is None  # answers, not failures
    assert classify(400) == "http_4xx" and classify(429) == "http_4xx"
    assert classify(503) == "http_5xx"
    assert classify(None, TimeoutError()) == "timeout"
    assert classify(None, ConnectionResetError()) == "connection"


def test_zipf_keys_concentrate_on_the_first_keys():
    zipf = KeyChooser(1000, "zipf", random.Random(3))
    picks = [zipf() for _ in range(5000)]
    assert all(0 <= p < 1000 for p in picks)
    assert sum(1 for p in picks if p < 10) > 0.3 * len(picks)
    uniform = KeyChooser(1000, "uniform", random.Random(3))
    assert sum(1 for _ in range(5000) if uniform() < 10) < 0.05 * 5000
