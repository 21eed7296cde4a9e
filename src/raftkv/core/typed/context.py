"""What a typed op sees of the state machine: ``Ctx``.

An op reads containers with ``read`` (None when the key is absent or expired, an
``OpError`` with Redis's WRONGTYPE text when it holds another type), gets one to
change with ``write`` (created empty when absent; copied first if a snapshot shares
it), says what it changed with ``changed``, and replaces a key's value whole with
``put`` (the STORE commands). ``finish`` then writes each changed key's header at the
entry's revision - a new version, the create revision and deadline kept - and deletes
a key whose container emptied, as Redis does.

Ops check their arguments and every key's type before changing anything, so an op
that fails changed nothing. The same op runs as a read outside the log (``index`` 0):
then ``write`` and ``put`` refuse, so a read can never change state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from raftkv.core import splitmix
from raftkv.core.containers import Container, Kind, empty, kept
from raftkv.core.history import DELETE, EXPIRE, TYPED, History, TypedRun
from raftkv.core.keyspace import header, is_live, kind_of, pack

if TYPE_CHECKING:
    from raftkv.core.commands import Op, Result
    from raftkv.core.keyspace import Keyspace
    from raftkv.core.scripts.lua import Engine

WRONGTYPE: Final = b"WRONGTYPE Operation against a key holding the wrong kind of value"
_MASK64: Final = (1 << 64) - 1
# (bound once: compiled, a module attribute is looked up on every call)
_draw: Final = splitmix.draw
_start: Final = splitmix.start
EVENT_CLASSES: Final = {Kind.HASH: "h", Kind.LIST: "l", Kind.SET: "s", Kind.ZSET: "z",
                        Kind.STREAM: "t"}


class OpError(Exception):
    """An error reply (its text starts with Redis's code); the op changed nothing."""

    def __init__(self, text: bytes) -> None:
        super().__init__(text)
        self.text = text


class Machine(Protocol):
    """What a script needs of the state machine (``core/typed/scripts.py``): the
    replicated script bodies, the Lua engine, and any op run at an index."""

    scripts: dict[bytes, bytes]

    def engine(self) -> Engine: ...

    def run_op(self, index: int, op: Op) -> Result: ...


class Pending:
    """A key's header after a run's ops so far (``Ctx.finish``), to store at its end:
    its create revision, deadline, version, and each op's event name."""

    __slots__ = ("create", "deadline", "names", "version")

    def __init__(self, create: int, deadline: int, version: int, names: list[bytes]) -> None:
        self.create = create
        self.deadline = deadline
        self.version = version
        self.names = names


class Ctx:
    __slots__ = ("_before", "_changed", "_fresh", "_headers", "_history", "_random_state",
                 "_remove", "events", "index", "keyspace", "machine", "now_ms")

    def __init__(self, keyspace: Keyspace, now_ms: int, index: int = 0,
                 remove: Callable[[bytes, int, int], object] | None = None,
                 history: History | None = None, seed: int = 0,
                 machine: Machine | None = None) -> None:
        self.keyspace = keyspace
        self.machine = machine  # for scripts (and the commands they call)
        self.now_ms = now_ms
        self.index = index  # 0: a read outside the log
        self._remove = remove  # the state machine's: removes and records the event
        self._history = history
        self._fresh: dict[bytes, Container | None] = {}  # created or replaced by this op
        # key -> (packed entry before, its container's nbytes before), once touched
        self._before: dict[bytes, tuple[bytes | None, int]] = {}
        self._changed: dict[bytes, bool] = {}  # key -> replaced whole (a STORE)
        # key -> its header after a run's ops so far, to store
        self._headers: dict[bytes, Pending] = {}
        self.events: list[tuple[bytes, bytes, str]] = []  # (event, key, class)
        self._random_state = seed  # a read's (0: the entry's index seeds the stream)

    def randrange(self, n: int) -> int:
        """A number in [0, n) from the entry's own random stream (SPOP and the RAND
        commands, ``splitmix``): seeded by the entry's index, so every replica draws
        the same (a read outside the log draws from the seed it was given)."""
        self._random_state, drawn = _draw(self._random_state or _start(self.index), n)
        return drawn

    def reseed(self, seed: int) -> None:
        """Restart the stream from ``seed`` (a script's math.randomseed)."""
        self._random_state = _start(seed)

    def sibling(self) -> Ctx:
        """A fresh context at the same point for the next command of a script: its own
        changes, the same entry, a random stream drawn from this one's."""
        return Ctx(self.keyspace, self.now_ms, self.index, self._remove, self._history,
                   self.randrange(_MASK64) + 1, self.machine)

    def sample(self, n: int, count: int) -> list[int]:
        """``count`` distinct numbers in [0, n), in the order drawn (Floyd's method)."""
        if count == 1:  # (SPOP's: the one draw Floyd's method makes)
            return [self.randrange(n)]
        chosen: dict[int, None] = {}
        for top in range(n - count, n):
            pick = self.randrange(top + 1)
            chosen[top if pick in chosen else pick] = None
        return list(chosen)

    # --- reading -------------------------------------------------------------

    def kind(self, key: bytes) -> int | None:
        """The Kind the key holds now, None when absent or expired."""
        if key in self._fresh:
            fresh = self._fresh[key]
            return fresh.KIND if fresh is not None and kept(fresh) else None
        raw = self.keyspace.raw(key)
        if raw is None or not is_live(raw, self.now_ms):
            return None
        return kind_of(raw)

    def read(self, key: bytes, kind: Kind) -> Container | None:
        """The key's container to read, None when absent; WRONGTYPE for another type."""
        found = self.kind(key)
        if found is None:
            return None
        if found != kind:
            raise OpError(WRONGTYPE)
        if key in self._fresh:
            return self._fresh[key]
        return self.keyspace.container(key)

    def check(self, key: bytes, kind: Kind) -> None:
        """WRONGTYPE unless the key is absent or holds ``kind``."""
        self.read(key, kind)

    # --- writing -------------------------------------------------------------

    def write(self, key: bytes, kind: Kind) -> Container:
        """The key's container to change, created empty when absent."""
        if not self.index:
            raise AssertionError("a read cannot change the keyspace")
        if key in self._fresh:
            fresh = self._fresh[key]
            if fresh is not None and kept(fresh):
                if kind != fresh.KIND:
                    raise OpError(WRONGTYPE)
                return fresh
        else:
            keyspace = self.keyspace
            raw = keyspace.raw(key)
            if raw is not None and is_live(raw, self.now_ms):
                if kind_of(raw) != kind:
                    raise OpError(WRONGTYPE)
                container = keyspace.writable(key, raw)
                if key not in self._before:  # (_touch, with what was read here)
                    self._before[key] = (raw, container.nbytes)
                return container
        created = empty(kind, self.keyspace.epoch)
        self._fresh[key] = created
        self._touch(key)
        return created

    def put(self, key: bytes, container: Container | None) -> None:
        """Replace the key's value, whatever its type, with ``container`` (deleting the
        key when it is None or empty): a STORE's destination."""
        if not self.index:
            raise AssertionError("a read cannot change the keyspace")
        self._touch(key)
        self._fresh[key] = container
        self._changed[key] = True

    def changed(self, key: bytes, event: bytes, kind: Kind) -> None:
        """``key``, of ``kind``, was changed by the op (got through ``write``): its header
        is rewritten at ``finish``, and keyspace notifications get ``event``. A key the op
        looked at but did not change (SADD of a member it has) keeps its revision."""
        self.events.append((event, key, EVENT_CLASSES[kind]))
        self._changed.setdefault(key, False)

    def _touch(self, key: bytes) -> None:
        """Remember the key as it was before this op first touched it."""
        if key in self._before:
            return
        raw = self.keyspace.raw(key)
        if raw is not None and not is_live(raw, self.now_ms):  # expired: collect it first
            assert self._remove is not None
            self._remove(key, self.index, EXPIRE)
            raw = None
        old = self.keyspace.container(key) if raw is not None and kind_of(raw) else None
        self._before[key] = (raw, old.nbytes if old is not None else 0)

    def begin(self) -> None:
        """Start the next op of a run in this context (the state machine runs writes to
        one key so): its own random stream, as if it ran alone."""
        self._random_state = 0

    def finish(self, later: bool = False) -> None:
        """Write every changed key's header at ``index`` (or delete it, emptied): it
        gains a version and a history record. ``later``: another op of a run follows,
        so the container stays open here and ``store`` writes the header, and the
        run's history records as one slot, once, at the end (a key emptied is deleted
        at once all the same)."""
        keyspace, index, headers, fresh = self.keyspace, self.index, self._headers, self._fresh
        for key, replaced in self._changed.items():
            opened = key in fresh
            container = fresh[key] if opened else keyspace.container(key)
            if not kept(container):
                if headers and key in headers and container is not None:  # (an earlier op's)
                    run = headers.pop(key)
                    stored = self._store(key, run.create, run.deadline, run.version,
                                         run.names, container)
                    self._before[key] = (stored, container.nbytes)
                _, old_nbytes = self._before.pop(key)  # (a later op finds it absent)
                fresh.pop(key, None)
                now = keyspace.raw(key)
                if now is not None:
                    if container is not None and kind_of(now):
                        # emptied in place: account for what it lost before it goes
                        keyspace.store_container(key, now, now, container, old_nbytes)
                    assert self._remove is not None
                    self._remove(key, index, DELETE)
                    self.events.append((b"del", key, "g"))
                continue
            assert container is not None
            pending = headers.get(key) if headers else None
            if pending is not None:
                create, deadline, version, names = (pending.create, pending.deadline,
                                                    pending.version, pending.names)
            else:
                names = []
                raw = self._before[key][0]
                if raw is None:
                    create, deadline, version = index, 0, 0
                else:
                    _, create, deadline, version, _ = header(raw)
            if replaced:
                deadline = 0  # a STORE's destination loses its TTL, as in Redis
            version += 1
            name = b""
            for event, changed_key, _ in reversed(self.events):  # (its last names it)
                if changed_key == key:
                    name = event
                    break
            if later or names:  # an op of a run: recorded with the run, in one slot
                names.append(name)
            if later:
                if pending is None:
                    headers[key] = Pending(create, deadline, version, names)
                else:
                    pending.deadline, pending.version = deadline, version
                if not opened:
                    fresh[key] = container
                continue
            if pending is not None:
                del headers[key]
            self._store(key, create, deadline, version, names, container)
            if not names and self._history is not None:
                self._history.record(index, key, TYPED, name, create, version)
        self._changed.clear()

    def store(self) -> None:
        """Write the header and container of every key a run changed (``finish``)."""
        headers, self._headers = self._headers, {}
        for key, run in headers.items():
            container = self._fresh[key]
            assert container is not None
            self._store(key, run.create, run.deadline, run.version, run.names, container)

    def _store(self, key: bytes, create: int, deadline: int, version: int, names: list[bytes],
               container: Container) -> bytes:
        """Store the key's header and container, and a run's history records (``names``:
        its ops' events, the last at ``version``); the header."""
        raw, old_nbytes = self._before[key]
        packed = pack(b"", self.index, create, deadline or None, version, container.KIND)
        self.keyspace.store_container(key, packed, raw, container,
                                      old_nbytes if raw is not None and kind_of(raw) else 0)
        if names and self._history is not None:
            self._history.record_batch(TypedRun(self.index, key, names, create,
                                                version - len(names) + 1))
        return packed
