"""The engine benchmark's gets: the keyspace and its floor hold the same keys, every
read finds its key (a benchmark of misses would flatter both), and the curve of gets
against the keys held is drawn."""

import random

from benchmarks import engine
from benchmarks.common import Row
from benchmarks.run import plots


def test_the_keyspace_and_the_floor_hold_the_same_keys_and_values():
    ks, bare = engine._filled(500)
    assert len(ks) == len(bare) == 500
    assert all(ks.value(key, 0) == value for key, value in bare.items())


def test_every_get_of_the_curve_finds_its_key(monkeypatch):
    found: list[bool] = []
    filled = engine._filled

    def watched(n):
        ks, bare = filled(n)

        class Counting:
            def value(self, key, now_ms):
                got = ks.value(key, now_ms)
                found.append(got is not None and got == bare[key])
                return got

        return Counting(), bare

    monkeypatch.setattr(engine, "_filled", watched)
    rates = engine.gets_from(300, 1000, 2)
    assert len(rates) == 2 and all(value > 0 and floor > 0 for value, floor in rates)
    assert len(found) == 2 * 1000 and all(found)


def test_the_gets_curve_is_drawn_per_size(tmp_path):
    rng = random.Random(0)
    rows = [Row("engine", f"keyspace gets (value), {keys:,} keys", system, rng.uniform(1, 2) * 1e6,
                "ops/s", b, extra={"keys": keys})
            for keys in (1_000, 30_000) for system in ("raftkv", "bare dict.get loop")
            for b in range(2)]
    plots(rows, tmp_path)
    assert (tmp_path / "engine_gets.png").stat().st_size > 10_000
