"""The benchmark table's ratios: paired bursts vs independent trials."""

from benchmarks.common import Row
from benchmarks.run import summarize


def _rows(workload, ours, theirs, **kw):
    return ([Row("s", workload, "raftkv", v, "x", i, **kw) for i, v in enumerate(ours)]
            + [Row("s", workload, "anchor", v, "x", i, **kw) for i, v in enumerate(theirs)])


def test_paired_bursts_give_the_median_of_the_pair_ratios():
    (entry,) = summarize(_rows("w", [10, 20, 30, 45], [5, 10, 15, 15]))
    assert entry["ratio"] == 2.0 and entry["pairs"] == 4
    assert entry["ratio_spread"] > 0  # the last pair's 3.0 widens the quartiles


def test_independent_trials_give_the_ratio_of_the_medians():
    rows = _rows("failover", [1.0, 1.1, 1.2], [4.0, 2.0, 3.0], higher_is_better=False,
                 paired=False)
    (entry,) = summarize(rows)
    # pairing trial i with trial i would give 1 / median(.25, .55, .4) = 2.5
    assert abs(entry["ratio"] - 3.0 / 1.1) < 1e-9 and entry["pairs"] == 0
    assert 0 < entry["ratio_spread"] < 1


def test_pairs_take_turns_at_running_first():
    from benchmarks.common import in_turns

    orders = [in_turns(pair, ["raftkv", "anchor"]) for pair in range(4)]
    assert orders == [["raftkv", "anchor"], ["anchor", "raftkv"]] * 2
