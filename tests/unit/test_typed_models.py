"""Each type against a plain-Python model (DATA-MODEL.md section 7): Hypothesis drives
random commands into the state machine - through ``apply`` as the log would, reads
through the same ops outside it - and into a model of the same type, and after every
step the container, its memory accounting and the replies agree. Snapshots are taken
along the way and checked at the end, after the writes that followed them: each still
shows the model as it was (copy-on-write), and restores into a fresh state machine."""

from __future__ import annotations

import bisect

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from raftkv.core import image
from raftkv.core.commands import TypedOp
from raftkv.core.containers import Container, Hash, List, Set, Stream, ZSet
from raftkv.core.keyspace import held
from raftkv.core.order import key as _order_key
from raftkv.core.state_machine import Snapshot, StateMachine
from raftkv.core.typed import Ctx, run
from raftkv.core.typed.replies import NIL_ARRAY, OK

ITEMS = st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"ff"])
INDEX = st.integers(-7, 7)
SCORES = st.sampled_from([-2.0, 0.0, 0.5, 1.0, 3.0, 7.25])
# and what a packed sorted set keeps as text: -0.0, a third, beyond 2**53, huge, inf
ZADD_SCORES = st.one_of(SCORES, st.sampled_from([-0.0, 1 / 3, 2.0**53 + 2, -1e300,
                                                 float("inf")]))
KEY = b"k"


def in_snapshot(snap: Snapshot) -> Container | None:
    """The container KEY holds in ``snap`` (a small one is held as its packed form)."""
    value = snap.containers.get(KEY)
    raw = snap.entries.get(KEY)
    return None if value is None or raw is None else held(raw, value, 0)


class TypedModel(RuleBasedStateMachine):
    """The machinery: apply, read, snapshots; a subclass adds its type's rules."""

    def __init__(self) -> None:
        super().__init__()
        self.sm = StateMachine()
        self.index = 0
        self.snapshots: list[tuple[object, object]] = []

    def write(self, *args: bytes) -> object:
        self.index += 1
        result = self.sm.apply(self.index, TypedOp(args, b"", 1000))
        assert result.ok, result
        return result.reply

    def read(self, *args: bytes) -> object:
        return run(Ctx(self.sm.keyspace, 1000), list(args))

    def snapshot_model(self) -> object:
        raise NotImplementedError

    def container_model(self, container: object) -> object:
        raise NotImplementedError

    @rule()
    def snapshot(self) -> None:
        self.snapshots.append((self.sm.snapshot(), self.snapshot_model()))

    @invariant()
    def memory_is_accounted(self) -> None:
        keyspace = self.sm.keyspace
        container = keyspace.container(KEY)
        expected = (len(KEY) + container.nbytes) if container is not None else 0
        assert keyspace.data_bytes == expected
        if container is not None:
            assert len(container) > 0  # an emptied container deletes its key

    def teardown(self) -> None:
        for snap, model in self.snapshots:
            assert self.container_model(in_snapshot(snap)) == model
            restored = StateMachine()
            image.decode(image.encode(snap), "test").restore(restored)  # type: ignore[arg-type]
            assert self.container_model(restored.keyspace.container(KEY)) == model


class HashModel(TypedModel):
    def __init__(self) -> None:
        super().__init__()
        self.model: dict[bytes, bytes] = {}

    def snapshot_model(self) -> object:
        return dict(self.model)

    def container_model(self, container: object) -> object:
        return dict(container.view()) if isinstance(container, Hash) else {}

    @rule(field=ITEMS, value=st.one_of(ITEMS, st.just(b"v" * 65)))
    def hset(self, field: bytes, value: bytes) -> None:
        """(A value over 64 bytes keeps the hash unpacked until it is gone.)"""
        assert self.write(b"hset", KEY, field, value) == int(field not in self.model)
        self.model[field] = value

    @rule(fields=st.lists(ITEMS, min_size=1, max_size=3))
    def hdel(self, fields: list[bytes]) -> None:
        expected = len({f for f in fields if f in self.model})
        assert self.write(b"hdel", KEY, *fields) == expected
        for field in fields:
            self.model.pop(field, None)

    @rule(field=ITEMS, delta=st.integers(-5, 5))
    def hincrby(self, field: bytes, delta: int) -> None:
        if field in self.model and not self.model[field].lstrip(b"-").isdigit():
            return
        total = int(self.model.get(field, b"0")) + delta
        assert self.write(b"hincrby", KEY, field, b"%d" % delta) == total
        self.model[field] = b"%d" % total

    @invariant()
    def same(self) -> None:
        assert self.read(b"hgetall", KEY) == [x for kv in self.model.items() for x in kv]
        assert self.read(b"hlen", KEY) == len(self.model)
        for field in (b"a", b"d", b"ff", b"zz"):
            assert self.read(b"hget", KEY, field) == self.model.get(field)
            assert self.read(b"hexists", KEY, field) == int(field in self.model)
        container = self.sm.keyspace.container(KEY)
        if container is not None:  # packed at rest exactly while small
            small = all(len(v) <= 64 for v in self.model.values())
            assert container.encoding() == (b"listpack" if small else b"hashtable")
            assert isinstance(container, Hash) and container.is_packed() == small


class ListModel(TypedModel):
    def __init__(self) -> None:
        super().__init__()
        self.model: list[bytes] = []

    def snapshot_model(self) -> object:
        return list(self.model)

    def container_model(self, container: object) -> object:
        return list(container.view()) if isinstance(container, List) else []

    @rule(items=st.lists(st.one_of(ITEMS, st.just(b"i" * 65)), min_size=1, max_size=3),
          left=st.booleans())
    def push(self, items: list[bytes], left: bool) -> None:
        for item in items:
            if left:
                self.model.insert(0, item)
            else:
                self.model.append(item)
        assert self.write(b"lpush" if left else b"rpush", KEY, *items) == len(self.model)

    @rule(left=st.booleans())
    def pop(self, left: bool) -> None:
        expected = (self.model.pop(0) if left else self.model.pop()) if self.model else None
        assert self.write(b"lpop" if left else b"rpop", KEY) == expected

    @rule(start=INDEX, stop=INDEX)
    def ltrim(self, start: int, stop: int) -> None:
        self.write(b"ltrim", KEY, b"%d" % start, b"%d" % stop)
        self.model = _redis_range(self.model, start, stop)

    @rule(count=st.integers(-2, 2), item=ITEMS)
    def lrem(self, count: int, item: bytes) -> None:
        order = self.model if count >= 0 else self.model[::-1]
        kept, removed = [], 0
        for x in order:
            if x == item and (count == 0 or removed < abs(count)):
                removed += 1
            else:
                kept.append(x)
        self.model = kept if count >= 0 else kept[::-1]
        assert self.write(b"lrem", KEY, b"%d" % count, item) == removed

    @rule(start=INDEX, stop=INDEX)
    def lrange(self, start: int, stop: int) -> None:
        assert self.read(b"lrange", KEY, b"%d" % start, b"%d" % stop) == \
            _redis_range(self.model, start, stop)

    @rule(index=INDEX, item=ITEMS)
    def lset(self, index: int, item: bytes) -> None:
        if not -len(self.model) <= index < len(self.model):
            return
        self.model[index] = item
        assert self.write(b"lset", KEY, b"%d" % index, item) == OK

    @rule(pivot=ITEMS, item=ITEMS, after=st.booleans())
    def linsert(self, pivot: bytes, item: bytes, after: bool) -> None:
        if not self.model:
            return
        expected = -1
        if pivot in self.model:
            self.model.insert(self.model.index(pivot) + after, item)
            expected = len(self.model)
        assert self.write(b"linsert", KEY, b"AFTER" if after else b"BEFORE", pivot,
                          item) == expected

    @invariant()
    def same(self) -> None:
        assert self.read(b"lrange", KEY, b"0", b"-1") == self.model
        for index in (0, 2, -1):
            expected = self.model[index] if -len(self.model) <= index < len(self.model) \
                else None
            assert self.read(b"lindex", KEY, b"%d" % index) == expected
        container = self.sm.keyspace.container(KEY)
        if container is not None:  # packed at rest exactly while small
            assert isinstance(container, List)
            assert container.is_packed() == all(len(item) <= 64 for item in self.model)


def _redis_range(items: list[bytes], start: int, stop: int) -> list[bytes]:
    size = len(items)
    start = max(start + size if start < 0 else start, 0)
    stop = stop + size if stop < 0 else stop
    return items[start : stop + 1] if start <= stop else []


class SetModel(TypedModel):
    def __init__(self) -> None:
        super().__init__()
        self.model: set[bytes] = set()

    def snapshot_model(self) -> object:
        return set(self.model)

    def container_model(self, container: object) -> object:
        return set(container) if isinstance(container, Set) else set()

    @rule(items=st.lists(ITEMS, min_size=1, max_size=3))
    def sadd(self, items: list[bytes]) -> None:
        assert self.write(b"sadd", KEY, *items) == len(set(items) - self.model)
        self.model |= set(items)

    @rule(items=st.lists(ITEMS, min_size=1, max_size=3))
    def srem(self, items: list[bytes]) -> None:
        assert self.write(b"srem", KEY, *items) == len(set(items) & self.model)
        self.model -= set(items)

    @rule(count=st.integers(0, 3))
    def spop(self, count: int) -> None:
        popped = self.write(b"spop", KEY, b"%d" % count)
        assert isinstance(popped, list) and len(popped) == min(count, len(self.model))
        assert set(popped) <= self.model
        self.model -= set(popped)

    @invariant()
    def same(self) -> None:
        assert set(self.read(b"smembers", KEY)) == self.model  # type: ignore[arg-type]
        assert self.read(b"scard", KEY) == len(self.model)


class ZSetModel(TypedModel):
    def __init__(self) -> None:
        super().__init__()
        self.model: dict[bytes, float] = {}

    def snapshot_model(self) -> object:
        return dict(self.model)

    def container_model(self, container: object) -> object:
        return dict(container.scores) if isinstance(container, ZSet) else {}

    def ordered(self) -> list[tuple[float, bytes]]:
        return sorted((s, m) for m, s in self.model.items())

    @rule(score=ZADD_SCORES, member=st.one_of(ITEMS, st.just(b"m" * 65)))
    def zadd(self, score: float, member: bytes) -> None:
        """(A member over 64 bytes keeps the set unpacked until it is gone.)"""
        assert self.write(b"zadd", KEY, repr(score).encode(), member) == \
            int(member not in self.model)
        self.keep(member, score)

    def keep(self, member: bytes, score: float) -> None:
        """(A score equal to the old one changes nothing, as in Redis: 0.0 stays 0.0
        when -0.0 arrives.)"""
        if self.model.get(member) != score:
            self.model[member] = score

    @rule(delta=SCORES, member=ITEMS)
    def zincrby(self, delta: float, member: bytes) -> None:
        new = self.model.get(member, 0.0) + delta
        assert self.write(b"zincrby", KEY, repr(delta).encode(), member) == new
        self.keep(member, new)

    @rule(items=st.lists(ITEMS, min_size=1, max_size=3))
    def zrem(self, items: list[bytes]) -> None:
        assert self.write(b"zrem", KEY, *items) == len(set(items) & set(self.model))
        for item in items:
            self.model.pop(item, None)

    @rule(highest=st.booleans())
    def zpop(self, highest: bool) -> None:
        ordered = self.ordered()
        reply = self.write(b"zpopmax" if highest else b"zpopmin", KEY)
        if not ordered:
            assert reply == []
            return
        score, member = ordered[-1] if highest else ordered[0]
        assert reply == [member, score]
        del self.model[member]

    @rule(low=SCORES, high=SCORES)
    def zrangebyscore(self, low: float, high: float) -> None:
        ordered = self.ordered()
        scores = [s for s, _ in ordered]
        start, end = bisect.bisect_left(scores, low), bisect.bisect_right(scores, high)
        assert self.read(b"zrangebyscore", KEY, repr(low).encode(), repr(high).encode()) == \
            [m for _, m in ordered[start:max(start, end)]]
        assert self.read(b"zcount", KEY, repr(low).encode(), repr(high).encode()) == \
            max(0, end - start)

    @invariant()
    def same(self) -> None:
        ordered = self.ordered()
        assert self.read(b"zrange", KEY, b"0", b"-1") == [m for _, m in ordered]
        for rank, (_, member) in enumerate(ordered):
            assert self.read(b"zrank", KEY, member) == rank
        probes = [b"a", b"b", b"c", b"d", b"e", b"ff", b"m" * 65, b"zz"]
        for member, score in zip(probes, self.read(b"zmscore", KEY, *probes), strict=True):
            assert repr(self.read(b"zscore", KEY, member)) == repr(score) == \
                repr(self.model.get(member))  # (repr: -0.0 keeps its sign)
        container = self.sm.keyspace.container(KEY)
        if container is not None:  # packed at rest exactly while small
            small = all(len(m) <= 64 for m in self.model)
            assert container.encoding() == (b"listpack" if small else b"skiplist")
            assert isinstance(container, ZSet) and container.is_packed() == small


class StreamModel(TypedModel):
    """Entries by ID (automatic IDs at the fixed entry time 1000, so they count up in
    the sequence), and a consumer group's last ID and pending entries."""

    def __init__(self) -> None:
        super().__init__()
        self.model: list[tuple[bytes, list[bytes]]] = []
        self.last = (0, 0)
        self.group: tuple[tuple[int, int], dict[bytes, bytes]] | None = None

    def snapshot_model(self) -> object:
        return [(i, list(f)) for i, f in self.model], self.group_model()

    def group_model(self) -> object:
        if self.group is None:
            return None
        return self.group[0], dict(self.group[1])

    def container_model(self, container: object) -> object:
        if container is None:
            return [], None
        assert isinstance(container, Stream)
        group = container.groups.get(b"g")
        held = None if group is None else (group.last_id, {
            b"%d-%d" % i: p.consumer for i, p in group.pending.items()})
        return [(b"%d-%d" % i, list(container.entries[i])) for i in container.ids], held

    @rule(value=ITEMS, cap=st.none() | st.integers(0, 4))
    def xadd(self, value: bytes, cap: int | None) -> None:
        trim = (b"MAXLEN", b"%d" % cap) if cap is not None else ()
        reply = self.write(b"xadd", KEY, *trim, b"*", b"f", value)
        self.last = (1000, self.last[1] + 1) if self.last[0] == 1000 else (1000, 0)
        assert reply == b"%d-%d" % self.last
        self.model.append((reply, [b"f", value]))
        if cap is not None:
            self.model = self.model[max(0, len(self.model) - cap):]

    @rule(data=st.data())
    def xdel(self, data: st.DataObject) -> None:
        if not self.model:
            return
        entry_id = data.draw(st.sampled_from([i for i, _ in self.model] + [b"1-1"]))
        removed = self.write(b"xdel", KEY, entry_id)
        assert removed == (1 if any(i == entry_id for i, _ in self.model) else 0)
        self.model = [(i, f) for i, f in self.model if i != entry_id]

    @rule()
    def group_create(self) -> None:
        if self.group is not None:
            return
        self.write(b"xgroup", b"CREATE", KEY, b"g", b"0", b"MKSTREAM")
        self.group = ((0, 0), {})

    @rule(count=st.integers(1, 3), consumer=st.sampled_from([b"a", b"b"]))
    def xreadgroup(self, count: int, consumer: bytes) -> None:
        if self.group is None:
            return
        last, pending = self.group
        fresh = [(i, f) for i, f in self.model if _id(i) > last][:count]
        reply = self.write(b"xreadgroup", b"GROUP", b"g", consumer, b"COUNT", b"%d" % count,
                           b"STREAMS", KEY, b">")
        if not fresh:
            assert reply == NIL_ARRAY
            return
        assert reply == [KEY, [[i, f] for i, f in fresh]]
        pending.update({i: consumer for i, _ in fresh})
        self.group = (_id(fresh[-1][0]), pending)

    @rule(data=st.data())
    def xack(self, data: st.DataObject) -> None:
        if self.group is None or not self.group[1]:
            return
        entry_id = data.draw(st.sampled_from(sorted(self.group[1])))
        assert self.write(b"xack", KEY, b"g", entry_id) == 1
        del self.group[1][entry_id]

    @invariant()
    def memory_is_accounted(self) -> None:  # (an empty stream stays, as in Redis)
        keyspace = self.sm.keyspace
        container = keyspace.container(KEY)
        expected = (len(KEY) + container.nbytes) if container is not None else 0
        assert keyspace.data_bytes == expected

    @invariant()
    def same(self) -> None:
        assert self.container_model(self.sm.keyspace.container(KEY)) == (
            self.model, self.group_model()) or (not self.model and self.group is None)
        entries = self.read(b"xrange", KEY, b"-", b"+")
        assert entries == [[i, f] for i, f in self.model]
        assert self.read(b"xlen", KEY) == len(self.model)
        if self.group is not None:
            summary = self.read(b"xpending", KEY, b"g")
            assert summary[0] == len(self.group[1])


def _id(text: bytes) -> tuple[int, int]:
    ms, seq = text.split(b"-")
    return int(ms), int(seq)


SETTINGS = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestHashModel = HashModel.TestCase
TestListModel = ListModel.TestCase
TestSetModel = SetModel.TestCase
TestZSetModel = ZSetModel.TestCase
TestStreamModel = StreamModel.TestCase
for _case in (TestHashModel, TestListModel, TestSetModel, TestZSetModel, TestStreamModel):
    _case.settings = SETTINGS
del _case


def test_a_small_hash_is_packed_at_rest_in_snapshots_and_after_a_restore() -> None:
    sm = StateMachine()

    def write(index: int, *args: bytes) -> None:
        assert sm.apply(index, TypedOp(args, b"", 1000)).ok

    def held(machine: StateMachine) -> Hash:
        found = machine.keyspace.container(KEY)
        assert isinstance(found, Hash)
        return found

    write(1, b"hset", KEY, b"a", b"1", b"b", b"2")
    assert held(sm).is_packed()
    packed_bytes = held(sm).nbytes
    snap = sm.snapshot()
    write(2, b"hset", KEY, b"c", b"v" * 65)  # too long for a packed hash
    assert not held(sm).is_packed() and held(sm).nbytes > packed_bytes
    assert isinstance(snap.containers[KEY], bytes)  # held as its packed form alone
    assert isinstance(before := in_snapshot(snap), Hash)
    assert before.is_packed() and before.view() == {b"a": b"1", b"b": b"2"}
    restored = StateMachine()
    image.decode(image.encode(snap), "test").restore(restored)  # type: ignore[arg-type]
    assert held(restored).is_packed() and held(restored).view() == {b"a": b"1", b"b": b"2"}
    write(3, b"hdel", KEY, b"c")
    assert held(sm).is_packed() and held(sm).nbytes == packed_bytes


def test_a_small_sorted_set_is_packed_at_rest_in_snapshots_and_after_a_restore() -> None:
    sm = StateMachine()

    def write(index: int, *args: bytes) -> None:
        assert sm.apply(index, TypedOp(args, b"", 1000)).ok

    def held(machine: StateMachine) -> ZSet:
        found = machine.keyspace.container(KEY)
        assert isinstance(found, ZSet)
        return found

    write(1, b"zadd", KEY, b"2.5", b"b", b"-0.0", b"a", b"1e300", b"c")
    assert held(sm).is_packed()
    packed_bytes = held(sm).nbytes
    snap = sm.snapshot()
    write(2, b"zadd", KEY, b"1", b"m" * 65)  # too long for a packed sorted set
    assert not held(sm).is_packed() and held(sm).nbytes > packed_bytes
    expected = [(-0.0, b"a"), (2.5, b"b"), (1e300, b"c")]
    assert isinstance(snap.containers[KEY], bytes)  # held as its packed form alone
    assert isinstance(before := in_snapshot(snap), ZSet)
    assert before.is_packed() and list(before.order) == expected
    restored = StateMachine()
    image.decode(image.encode(snap), "test").restore(restored)  # type: ignore[arg-type]
    assert held(restored).is_packed() and list(held(restored).order) == expected
    assert repr(held(restored).score(b"a")) == "-0.0"
    write(3, b"zrem", KEY, b"m" * 65)
    assert held(sm).is_packed() and held(sm).nbytes == packed_bytes


@given(st.lists(st.tuples(st.floats(allow_nan=False) | st.sampled_from([-0.0, 0.0]),
                          st.binary(max_size=4)), max_size=30))
def test_order_keys_sort_pairs_as_redis_does(pairs: list[tuple[float, bytes]]) -> None:
    """A large sorted set orders its order keys as bytes: that must be (score, member)
    order, every sign and magnitude, -0.0 equal to 0.0, a member's prefix first."""
    assert sorted(pairs, key=lambda pair: _order_key(*pair)) == sorted(pairs)
