"""The C hash table (``core/table.c``) against its reference in plain Python
(``core/table.py``), driven by Hypothesis: same answers to every read after any
sequence of puts, pops, copies and clears."""

import random

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import raftkv.core.table as native
from raftkv.core import keyspace
from raftkv.core.keyspace import pack
from tests.support.source_only import reference as source_reference

reference = source_reference("raftkv/core/table.py")

# Enough keys that the table grows several times and probe runs wrap around its end.
ALL_KEYS = [b"", b"k"] + [b"key-%d" % i for i in range(60)]
KEYS = st.sampled_from(ALL_KEYS)
NOW = 1_000


@st.composite
def entries(draw):
    value = draw(st.binary(max_size=40))
    deadline = draw(st.none() | st.integers(1, 2 * NOW))
    version = draw(st.sampled_from([1, 7, 2**16]))  # 2**16: a full header with no deadline
    return pack(value, draw(st.integers(1, 2**33)), 1, deadline, version)


def test_the_extension_is_what_runs():
    """Otherwise the model test would compare the reference with itself."""
    assert native.__file__.endswith(".so")
    assert not reference.__file__.endswith(".so")


@pytest.mark.parametrize("module", [native, reference], ids=["c", "python"])
def test_the_header_layout_is_the_keyspaces(module):
    assert (module.COMPACT_BYTES, module.FULL_BYTES) == (keyspace.COMPACT_BYTES,
                                                         keyspace.FULL_BYTES)
    table = module.Table()
    table.put(b"ttl", pack(b"v", 5, 5, 700, 1))
    table.put(b"plain", pack(b"w", 5, 5, None, 1))
    assert table.value(b"ttl", 699) == b"v"
    assert table.value(b"ttl", 700) is None
    assert table.values([b"ttl", b"plain", b"none"], 700) == [None, b"w", None]


@pytest.mark.parametrize("module", [native, reference], ids=["c", "python"])
def test_bad_arguments_are_refused_and_change_nothing(module):
    table = module.Table()
    table.put(b"a", pack(b"v", 1, 1, None, 1))
    with pytest.raises(TypeError):
        table.put("a", pack(b"x", 2, 1, None, 2))
    with pytest.raises(TypeError):
        table.value(1, 0)
    with pytest.raises(TypeError):
        table.values([b"a", "b"], 0)
    with pytest.raises(TypeError):
        table.prefetch([b"a", "b"])
    with pytest.raises(ValueError):
        table.put(b"a", b"\x00short")
    with pytest.raises(ValueError):
        table.put(b"a", b"")
    assert table.items() == [(b"a", pack(b"v", 1, 1, None, 1))]


def test_a_million_operations_agree():
    """Long random runs over a few thousand keys: many resizes, and pops in the middle
    of long probe runs, which must move later keys back into the gap."""
    rng = random.Random(7)
    fast, model = native.Table(), reference.Table()
    keys = [b"%x" % rng.getrandbits(40) for _ in range(5_000)]
    for step in range(1_000_000):
        key = rng.choice(keys)
        if rng.random() < 0.45:
            assert fast.pop(key) == model.pop(key)
        else:
            packed = pack(b"%d" % step, step + 1, 1, None, 1)
            fast.put(key, packed)
            model.put(key, packed)
        if step % 50_000 == 0:
            assert sorted(fast.items()) == sorted(model.items())
    assert len(fast) == len(model)
    assert fast.values(keys, 0) == model.values(keys, 0)


class TableModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.fast, self.model = native.Table(), reference.Table()
        self.copies = []  # (fast copy, model contents when copied)

    @rule(key=KEYS, packed=entries())
    def put(self, key, packed):
        self.fast.put(key, packed)
        self.model.put(key, packed)

    @rule(key=KEYS)
    def pop(self, key):
        assert self.fast.pop(key) == self.model.pop(key)

    @rule(pairs=st.lists(st.tuples(KEYS, entries()), max_size=20))
    def update(self, pairs):
        self.fast.update(pairs)
        self.model.update(pairs)

    @rule(key=KEYS, now=st.integers(0, 3 * NOW))
    def read(self, key, now):
        assert self.fast.get(key) == self.model.get(key)
        assert self.fast.value(key, now) == self.model.value(key, now)

    @rule(keys=st.lists(KEYS, max_size=40), now=st.integers(0, 3 * NOW))
    def read_many(self, keys, now):
        assert self.fast.values(keys, now) == self.model.values(keys, now)
        self.fast.prefetch(keys)  # (changes nothing: the invariants check)

    @precondition(lambda self: len(self.copies) < 3)
    @rule()
    def copy(self):
        self.copies.append((self.fast.copy(), sorted(self.model.items())))

    @rule()
    def clear(self):
        self.fast.clear()
        self.model.clear()

    @invariant()
    def same_contents(self):
        assert len(self.fast) == len(self.model)
        assert sorted(self.fast.items()) == sorted(self.model.items())

    @invariant()
    def copies_stay_as_they_were(self):
        for twin, contents in self.copies:
            assert sorted(twin.items()) == contents


TableModel.TestCase.settings = settings(max_examples=200, stateful_step_count=80,
                                        deadline=None)
test_table_model = TableModel.TestCase
