"""The linearizability checker on histories whose answer is known."""

from __future__ import annotations

import math
import random

import pytest

from tests.support.wgl import Op, linearizable


def w(p: int, value: str, call: float, ret: float = math.inf, outcome: str = "ok") -> Op:
    return Op(p, "write", value, call, ret, None, outcome)


def r(p: int, seen: str | None, call: float, ret: float, outcome: str = "ok") -> Op:
    return Op(p, "read", None, call, ret, seen, outcome)


def cas(p: int, old: str, new: str, swapped: bool, call: float, ret: float = math.inf,
        outcome: str = "ok") -> Op:
    return Op(p, "cas", (old, new), call, ret, swapped, outcome)


GOOD = {
    "sequential": [w(0, "a", 0, 1), r(1, "a", 2, 3)],
    "read of the initial absence": [r(0, None, 0, 1), w(1, "a", 2, 3)],
    "read overlapping a write may see either": [w(0, "a", 0, 10), r(1, None, 1, 2),
                                                r(2, "a", 3, 4)],
    "unknown write seen later": [w(0, "a", 0, outcome="info"), r(1, "a", 5, 6)],
    "unknown write never seen": [w(0, "a", 0, outcome="info"), r(1, None, 5, 6)],
    "a failed write left out": [w(0, "a", 0, 1, "fail"), r(1, None, 2, 3)],
    "cas chain": [w(0, "a", 0, 1), cas(1, "a", "b", True, 2, 3), r(2, "b", 4, 5),
                  cas(0, "a", "c", False, 6, 7)],
    "unknown cas that could not swap": [w(0, "a", 0, 1), cas(1, "z", "b", False, 2,
                                                             outcome="info"), r(2, "a", 5, 6)],
    "unknown cas that swapped": [w(0, "a", 0, 1), cas(1, "a", "b", False, 2, outcome="info"),
                                 r(2, "b", 5, 6)],
    "concurrent writes in either order": [w(0, "a", 0, 5), w(1, "b", 0, 5),
                                          r(2, "a", 6, 7)],
}

BAD = {
    "stale read after a completed write": [w(0, "a", 0, 1), w(1, "b", 2, 3),
                                           r(2, "a", 4, 5)],
    "read of a value never written": [w(0, "a", 0, 1), r(1, "z", 2, 3)],
    "a failed write observed": [w(0, "a", 0, 1, "fail"), r(1, "a", 2, 3)],
    "visible then gone": [w(0, "a", 0, outcome="info"), r(1, "a", 5, 6), r(1, None, 7, 8)],
    "two cas from one value both win": [w(0, "a", 0, 1), cas(1, "a", "b", True, 2, 3),
                                        cas(2, "a", "c", True, 4, 5)],
    "unknown cas seen before it was sent": [w(0, "a", 0, 1), r(2, "b", 2, 3),
                                            cas(1, "a", "b", False, 4, outcome="info")],
    "cas refused although it matched": [w(0, "a", 0, 1), cas(1, "a", "b", False, 2, 3)],
    "reads disagree on the order": [w(0, "a", 0, 10), w(1, "b", 0, 10), r(2, "a", 11, 12),
                                    r(3, "b", 13, 14), r(2, "a", 15, 16)],
}


@pytest.mark.parametrize("name", GOOD)
def test_known_good_histories_pass(name: str) -> None:
    assert linearizable(GOOD[name])


@pytest.mark.parametrize("name", BAD)
def test_known_bad_histories_fail(name: str) -> None:
    assert not linearizable(BAD[name])


def _concurrent_history(rng: random.Random, ops: int) -> list[Op]:
    """Ops on a real register, each applied at a random instant inside its interval."""
    history, state, t = [], None, 0.0
    for i in range(ops):
        t += rng.uniform(0.1, 1.0)  # the instant it takes effect, inside [call, ret]
        call, ret = t - rng.uniform(0, 3), t + rng.uniform(0, 3)
        kind = rng.choice(["read", "write", "cas"])
        if kind == "write":
            state = f"v{i}"
            history.append(w(i % 5, state, call, ret))
        elif kind == "read":
            history.append(r(i % 5, state, call, ret))
        else:
            expected = rng.choice([state or "nope", "nope"])
            swapped = expected == state
            history.append(cas(i % 5, expected, f"v{i}", swapped, call, ret))
            if swapped:
                state = f"v{i}"
    return history


@pytest.mark.parametrize("seed", range(20))
def test_generated_histories_pass_and_a_corrupted_read_fails(seed: int) -> None:
    rng = random.Random(seed)
    history = _concurrent_history(rng, 60)
    assert linearizable(history)
    # Negative control: a read that returns a value no write ever produced.
    reads = [op for op in history if op.kind == "read"]
    if reads:
        rng.choice(reads).result = "never-written"
        assert not linearizable(history)
