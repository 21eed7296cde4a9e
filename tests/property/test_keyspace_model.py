"""The state machine against a plain-dict model, driven by Hypothesis.

The model stores ``key -> [value, version, create_revision, mod_revision, deadline]``
and decides expiry with a manual clock; every rule checks reads against it."""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from raftkv.core.commands import (
    Append,
    Cond,
    Delete,
    DeleteExpired,
    Expire,
    IncrBy,
    MultiPut,
    Outcome,
    Put,
)
from raftkv.core.numbers import parse_int64
from raftkv.core.state_machine import StateMachine

ALL_KEYS = [b"a", b"ab", b"b", b"b/1", b"b/2", b"c", b"\xff"]
KEYS = st.sampled_from(ALL_KEYS)
VALUES = st.sampled_from([b"", b"1", b"-7", b"x", b"hello", b"99"])


class KeyspaceModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.sm = StateMachine()
        self.model: dict[bytes, list] = {}
        self.index = 0
        self.now = 1000

    def apply(self, cmd):
        self.index += 1
        return self.sm.apply(self.index, cmd)

    def live(self, key):
        e = self.model.get(key)
        if e is None or (e[4] is not None and e[4] <= self.now):
            return None
        return e

    def write(self, key, value, deadline):
        cur = self.live(key)
        version, create = (cur[1] + 1, cur[2]) if cur else (1, self.index)
        self.model[key] = [value, version, create, self.index, deadline]

    @rule(key=KEYS, value=VALUES, ttl=st.none() | st.integers(1, 50),
          cond=st.sampled_from(Cond), stale=st.booleans(), keep=st.booleans())
    def put(self, key, value, ttl, cond, stale, keep):
        cur = self.live(key)
        expected = (cur[3] if cur else 0) - (1 if stale else 0)
        deadline = None if ttl is None else self.now + ttl
        r = self.apply(Put(key, value, deadline, keep, cond, expected, now_ms=self.now))
        holds = {Cond.NONE: True, Cond.ABSENT: cur is None, Cond.EXISTS: cur is not None,
                 Cond.MOD_REVISION: cur is not None and cur[3] == expected}[cond]
        assert r.ok == holds
        if holds:
            self.write(key, value, cur[4] if (keep and cur) else deadline)

    @rule(key=KEYS, cond=st.sampled_from([Cond.NONE, Cond.MOD_REVISION]), stale=st.booleans())
    def delete(self, key, cond, stale):
        cur = self.live(key)
        expected = (cur[3] if cur else 0) - (1 if stale else 0)
        r = self.apply(Delete(key, cond, expected, now_ms=self.now))
        if cur is None:
            assert r.outcome is Outcome.NOT_FOUND
            self.model.pop(key, None)
        elif cond is Cond.MOD_REVISION and stale:
            assert r.outcome is Outcome.CONDITION_FAILED
        else:
            assert r.ok
            del self.model[key]

    @rule(key=KEYS, delta=st.integers(-5, 5))
    def incr(self, key, delta):
        cur = self.live(key)
        r = self.apply(IncrBy(key, delta, now_ms=self.now))
        number = 0 if cur is None else parse_int64(cur[0])
        if number is None:
            assert r.outcome is Outcome.NOT_INTEGER
        else:
            assert r.ok and r.entry.value == str(number + delta).encode()
            self.write(key, str(number + delta).encode(), cur[4] if cur else None)

    @rule(key=KEYS, value=VALUES)
    def append(self, key, value):
        cur = self.live(key)
        self.apply(Append(key, value, now_ms=self.now))
        self.write(key, (cur[0] if cur else b"") + value, cur[4] if cur else None)

    @rule(key=KEYS, ttl=st.none() | st.integers(-5, 50))
    def expire(self, key, ttl):
        cur = self.live(key)
        deadline = None if ttl is None else self.now + ttl
        r = self.apply(Expire(key, deadline, now_ms=self.now))
        if cur is None:
            assert r.outcome is Outcome.NOT_FOUND
        elif deadline is not None and deadline <= self.now:
            del self.model[key]
        elif not (deadline is None and cur[4] is None):
            self.write(key, cur[0], deadline)

    @rule(items=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=4),
          only_if_none_exist=st.booleans())
    def multi_put(self, items, only_if_none_exist):
        r = self.apply(MultiPut(tuple(items), only_if_none_exist, now_ms=self.now))
        holds = not only_if_none_exist or not any(self.live(k) for k, _ in items)
        assert r.ok == holds
        if holds:
            for key, value in items:  # in order; every key loses its TTL
                self.write(key, value, None)

    @rule(ms=st.integers(1, 30))
    def advance_clock(self, ms):
        self.now += ms

    @rule()
    def collect_expired(self):
        due = self.sm.keyspace.due(self.now, 100)
        expected = sorted(k for k, e in self.model.items() if e[4] is not None and e[4] <= self.now)
        assert sorted(due) == expected
        self.apply(DeleteExpired(tuple(due), now_ms=self.now))
        for key in due:
            del self.model[key]

    @rule(prefix=st.sampled_from([b"", b"a", b"b/", b"z"]), limit=st.integers(1, 4))
    def paginate(self, prefix, limit):
        pages, after = [], None
        while True:
            page = self.sm.keyspace.scan(self.now, prefix, after, limit)
            pages.extend(e.key for e in page)
            if len(page) < limit:
                break
            after = page[-1].key
        assert pages == sorted(k for k in self.model if k.startswith(prefix) and self.live(k))

    @invariant()
    def sizes_match_the_model(self):
        keyspace = self.sm.keyspace
        assert len(keyspace) == len(self.model)
        assert keyspace.data_bytes == sum(len(k) + len(e[0]) for k, e in self.model.items())
        assert keyspace.volatile_count == sum(1 for e in self.model.values() if e[4] is not None)

    @invariant()
    def reads_match_the_model(self):
        for key in ALL_KEYS:
            entry = self.sm.keyspace.get(key, self.now)
            cur = self.live(key)
            if cur is None:
                assert entry is None
            else:
                assert (entry.value, entry.version, entry.create_revision, entry.mod_revision,
                        entry.expires_at_ms) == tuple(cur)

    @invariant()
    def batched_reads_match_the_model(self):  # MGET, a pipeline's GETs; absent keys too
        keys = [*ALL_KEYS, b"nope", *ALL_KEYS[::-1]]
        expected = [None if (cur := self.live(key)) is None else cur[0] for key in keys]
        assert self.sm.keyspace.values(keys, self.now) == expected


TestKeyspaceModel = KeyspaceModel.TestCase
TestKeyspaceModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
