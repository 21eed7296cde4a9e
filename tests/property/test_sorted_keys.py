"""Sorted keys: the C module (``core/sorted_keys.c``) against its plain Python reference
(``sorted_keys.py``). Any run of adds, removes, pops, bisects, indexes and reads gives
the same answers and the same exceptions in both. Long runs on few distinct keys make
the C list split its chunks, merge them and drop them, as a sorted set of many members
does."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import raftkv.core.sorted_keys as native
from tests.support.source_only import reference as source_reference

reference = source_reference("raftkv/core/sorted_keys.py")

KEYS = st.binary(max_size=6)
OPS = st.lists(st.tuples(st.sampled_from(["add", "remove", "pop", "bisect_left", "index",
                                          "item"]), KEYS, st.integers(-40, 40)),
               max_size=200)


def _outcome(keys, op: str, key: bytes, number: int):
    try:
        if op == "pop":
            return keys.pop(number)
        if op == "item":
            return keys[number]
        return getattr(keys, op)(key)
    except (ValueError, IndexError, TypeError) as exc:
        return type(exc)


def _apply(lists, op: str, key: bytes, number: int) -> None:
    outcomes = [_outcome(keys, op, key, number) for keys in lists]
    assert outcomes[0] == outcomes[1], (op, key, number)
    assert len(lists[0]) == len(lists[1])


def test_the_native_module_is_the_c_one() -> None:
    assert native.__file__.endswith(".so") and reference.__file__.endswith("sorted_keys.py")


@settings(max_examples=300, deadline=None)
@given(start=st.lists(KEYS, max_size=30), ops=OPS)
def test_any_run_of_operations_matches_the_reference(start, ops) -> None:
    lists = (native.SortedKeys(start), reference.SortedKeys(start))
    for op, key, number in ops:
        _apply(lists, op, key, number)
    assert list(lists[0]) == list(lists[1]) == sorted(list(lists[1]))


@pytest.mark.parametrize("seed", range(6))
def test_long_runs_split_and_merge_chunks_alike(seed: int) -> None:
    """Thousands of keys: adds until chunks split, then removes and pops until they
    merge and empty, reading ranks and items throughout."""
    rng = random.Random(seed)
    universe = [rng.randbytes(rng.randrange(0, 5)) for _ in range(3000)]
    start = rng.sample(universe, rng.choice([0, 10, 2500]))
    lists = (native.SortedKeys(start), reference.SortedKeys(start))
    for phase_adds in (0.9, 0.5, 0.1):
        for _ in range(6000):
            roll = rng.random()
            key = rng.choice(universe)
            if roll < phase_adds:
                _apply(lists, "add", key, 0)
            elif roll < phase_adds + 0.05:
                _apply(lists, "pop", key, rng.choice([0, -1, rng.randrange(-3000, 3000)]))
            elif roll < 0.97:
                _apply(lists, "remove", key, 0)
            else:
                _apply(lists, rng.choice(["index", "bisect_left", "item"]), key,
                       rng.randrange(-3000, 3000))
        assert list(lists[0]) == list(lists[1])
    while len(lists[1]):  # empty it: the last chunk goes too
        _apply(lists, "pop", b"", rng.choice([0, -1]))
    assert list(lists[0]) == [] and lists[0].bisect_left(b"x") == 0


def test_what_is_not_bytes_is_refused_alike() -> None:
    for module in (native, reference):
        keys = module.SortedKeys([b"a"])
        for bad in ("a", bytearray(b"a"), None, 1):
            for call in (keys.add, keys.remove, keys.bisect_left, keys.index):
                with pytest.raises(TypeError):
                    call(bad)
        with pytest.raises(TypeError):
            module.SortedKeys([b"a", "b"])
        with pytest.raises(TypeError):
            keys["0"]
        assert list(keys) == [b"a"]


def test_iterating_while_the_list_changes_is_refused_alike() -> None:
    for module in (native, reference):
        keys = module.SortedKeys([b"a", b"b", b"c"])
        seen = iter(keys)
        assert next(seen) == b"a"
        keys.add(b"d")
        with pytest.raises(RuntimeError):
            next(seen)
        assert list(keys) == [b"a", b"b", b"c", b"d"]
