"""Blocking commands (DATA-MODEL.md section 5): a BLPOP, BLMOVE, BZPOPMIN, XREADGROUP...
that finds nothing to pop waits, outside the state machine, until it can be served or
its timeout passes. The waiter is parked on the **leader**, whichever node the client
is connected to, so waiting clients are served in the order they arrived at the
leader, across the whole cluster. (An XREAD BLOCK waits on the client's node instead:
it only reads - when a key it waits on changes, it reads that node's state again, with
no log entry.)

A waiter holds the plain pop it stands for (LMPOP, LMOVE, ZMPOP...) as a command
line. Only a logged pop changes state, so replicas never decide who is served: when
an applied entry touches one of its keys and the leader's state shows something to
pop there, the **first** waiter on that key proposes its pop as an ordinary write with
a request id of its own (the waiter's id and the attempt's number). If the pop finds
nothing (another client won the element), the waiter stays first in line and its
next attempt takes the next number. A waiter proposes only when the leader's state
holds its kind of value at one of its keys, and a fallback check once a second
catches what no applied entry announced: idle waiters cost no log entries.

The client's node holds a ``Blocked`` and reaches the leader with ``call_leader``
(its own service, when it leads). When the leadership moves, the old leader drops its
waiters (``step_down``) and every ``Blocked`` sends its call again - same waiter id,
the time left - to the new leader, which first settles what the earlier attempts did:
after a read barrier every attempt the log holds is applied, and the latest one in
the request table either popped (that is the answer) or did not (the waiter parks
again with the next number). So an element is neither lost nor delivered twice, and a
client sees a failover as a longer wait. Timeouts run on the leader's clock; an
attempt in flight when the timeout passes (or the client is unblocked) is let finish:
if it popped, the client gets the element.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import struct
from collections import deque
from collections.abc import Callable
from typing import Final, TypeAlias, TypeVar

from raftkv.core.binary import U32, BinaryReader
from raftkv.core.commands import Command, Result, Txn, TxnResult, TypedOp, TypedResult
from raftkv.core.image import decode_result, encode_result
from raftkv.core.typed.replies import NilArray
from raftkv.errors import CommitTimeout, NotLeader, RaftKVError, Unavailable

log = logging.getLogger(__name__)

S = TypeVar("S")
T = TypeVar("T")

RETRY_S: Final = 0.05  # between attempts whose outcome is unknown or not applied
RECHECK_S: Final = 1.0
GRACE_S: Final = 1.0  # past its timeout, a Blocked no leader answered settles...
SETTLE_S: Final = 30.0  # ...and fails (outcome unknown) if none answers for this long
_MIN_TIMEOUT_S: Final = 0.001  # what is left of a timeout that has passed (0: for ever)


class Waiter:
    """One blocked command: its pop, its keys, and the future its client waits on
    (resolved with the pop's result, or None when the timeout passed)."""

    __slots__ = ("_attempt", "_base_id", "_timer", "dirty", "done", "future", "in_flight",
                 "keys", "kind", "line", "read", "ready", "stopping")

    def __init__(self, line: list[bytes], keys: list[bytes], kind: int,
                 future: asyncio.Future[Result | None],
                 ready: Callable[[bytes], bool] | None = None,
                 read: Callable[[list[bytes]], Result] | None = None,
                 base_id: bytes = b"", attempt: int = 0) -> None:
        self.line = line
        self.keys = list(dict.fromkeys(keys))
        self.kind = kind  # what it pops from (a containers.Kind)
        self.ready = ready  # whether a key has something for it (default: holds ``kind``)
        self.read = read  # a read (XREAD): run on this node's state, not proposed
        self.future = future
        self._base_id = base_id or new_waiter_id()
        self._attempt = attempt
        self._timer: asyncio.TimerHandle | None = None
        self.in_flight = False
        self.dirty = False  # a key was touched while an attempt was in flight
        self.stopping: BaseException | bool = False  # True: timed out; an error: unblocked
        self.done = False

    def request_id(self) -> bytes:
        return self._base_id + self._attempt.to_bytes(4, "big")

    def next_attempt(self) -> None:
        self._attempt += 1


class Waiters:
    """The blocked commands parked on this node, in arrival order per key: the pops
    while it leads (``serve``, the ``LeaderCalls`` of the service port), and the
    XREAD BLOCKs of its own clients."""

    def __init__(self, submit: Callable[[Command], asyncio.Future[Result]],
                 holds: Callable[[bytes], int | None], now_ms: Callable[[], int],
                 leads: Callable[[], bool] = lambda: True,
                 latest: Callable[[bytes], asyncio.Future[tuple[int, Result] | None]]
                 | None = None,
                 unread: Callable[[bytes, bytes], bool] | None = None) -> None:
        self._submit = submit
        self._holds = holds  # the Kind this node's state holds at a key (None: nothing)
        self._now_ms = now_ms
        self._leads = leads  # whether this node orders writes now
        self._latest = latest  # a waiter's latest applied attempt, after a read barrier
        self._unread = unread  # whether a stream has entries a group has not read
        self._by_key: dict[bytes, deque[Waiter]] = {}
        self._parked: dict[bytes, Waiter] = {}  # the pops, by waiter id
        self._count = 0
        self._recheck: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return self._count

    def wait(self, line: list[bytes], keys: list[bytes], kind: int, timeout_s: float,
             ready: Callable[[bytes], bool] | None = None,
             read: Callable[[list[bytes]], Result] | None = None,
             base_id: bytes = b"", attempt: int = 0) -> Waiter:
        """Run the pop ``line`` on ``keys`` (holding ``kind``) now if this node's state
        shows anything there - its error, a WRONGTYPE say, is the answer then - and
        else park it until it pops something or ``timeout_s`` passes (0: never).
        ``ready(key)`` says when a key has something for it (by default: when it holds
        ``kind``); with ``read``, the line is a read, run here instead of proposed
        (XREAD: the caller has made its first attempt). ``base_id`` and ``attempt``
        number its pops' request ids."""
        loop = asyncio.get_running_loop()
        waiter = Waiter(line, keys, kind, loop.create_future(), ready, read, base_id, attempt)
        for key in waiter.keys:
            self._by_key.setdefault(key, deque()).append(waiter)
        self._count += 1
        if read is None:
            self._parked[waiter._base_id] = waiter
        if timeout_s > 0:
            waiter._timer = loop.call_later(timeout_s, self.stop, waiter, None)
        if self._recheck is None:
            self._recheck = loop.call_later(RECHECK_S, self._check_all)
        if read is None and any(self._holds(key) is not None for key in waiter.keys):
            self._attempt(waiter, first=True)
        return waiter

    def stop(self, waiter: Waiter, error: BaseException | None = None) -> bool:
        """End the wait: timed out (``error`` None: the client gets a nil), unblocked
        (CLIENT UNBLOCK) or its client gone. An attempt in flight finishes first.
        False if the waiter was already done."""
        if waiter.done:
            return False
        waiter.stopping = error if error is not None else True
        if not waiter.in_flight:
            self._finish(waiter, None)
        return True

    def observe(self, command: Command, result: Result) -> None:
        """After each applied entry: wake the first waiter of every key it touched (once
        the replicator is done applying: a pop is proposed from outside its loop)."""
        if self._count:
            touched = _touched(command, result)
            if touched:
                asyncio.get_running_loop().call_soon(self._wake_first, list(touched))

    # --- as the leader (the service port's LeaderCalls) ----------------------------

    def serve(self, payload: bytes) -> asyncio.Future[bytes]:
        """Another node's ``Blocked`` calls (``take``, over the wire): answers
        ``encode_answer``."""
        return _relay(self.take(BlockCall.decode(payload)), encode_answer)

    def take(self, call: BlockCall) -> asyncio.Future[Result | None]:
        """A ``Blocked``'s call: park its pop, or - sent again - find the waiter it
        already has here, or settle what its earlier attempts did on another leader
        before parking it again. Resolves with the pop's result, or None."""
        if not self._leads():
            raise Unavailable("this node does not lead")
        waiter = self._parked.get(call.base_id)
        if waiter is not None:  # its answer was lost on the way, or the client stops
            if call.stop:
                self.stop(waiter)
            return waiter.future
        if not call.resumed or self._latest is None:
            return self._park(call, 0).future
        answer: asyncio.Future[Result | None] = asyncio.get_running_loop().create_future()

        def settled(done: asyncio.Future[tuple[int, Result] | None]) -> None:
            error = done.exception() if not done.cancelled() else Unavailable("cancelled")
            if error is not None:
                answer.set_exception(error)
                return
            latest, attempt = done.result(), 0
            if latest is not None:
                attempt, result = latest
                if popped(result) or (attempt == 0 and not result.ok):
                    answer.set_result(result)
                    return
                attempt += 1
            if call.stop:
                answer.set_result(None)
                return
            waiter = self._parked.get(call.base_id) or self._park(call, attempt)
            _relay(waiter.future, _same, answer)

        self._latest(call.base_id).add_done_callback(settled)
        return answer

    def step_down(self) -> None:
        """This node no longer leads: drop every parked pop (its Blocked sends it to the
        next leader, which settles an attempt left in flight here)."""
        moved = list(self._parked.values())
        for waiter in moved:
            self._drop(waiter)
        for waiter in moved:
            if not waiter.future.done():
                waiter.future.set_exception(Unavailable("this node no longer leads"))

    def _park(self, call: BlockCall, attempt: int) -> Waiter:
        ready = None
        if call.group is not None and self._unread is not None:
            unread, group = self._unread, call.group
            ready = lambda key: unread(key, group)  # noqa: E731
        return self.wait(call.line, call.keys, call.kind, call.timeout_s, ready,
                         base_id=call.base_id, attempt=attempt)

    # --- internals ------------------------------------------------------------------

    def _wake_first(self, keys: list[bytes]) -> None:
        for key in keys:
            queue = self._by_key.get(key)
            if not queue:
                continue
            waiter = queue[0]
            if waiter.in_flight:
                waiter.dirty = True
            elif not waiter.stopping and any(self._ready(waiter, k) for k in waiter.keys):
                self._attempt(waiter)

    def _ready(self, waiter: Waiter, key: bytes) -> bool:
        if waiter.ready is not None:
            return waiter.ready(key)
        return self._holds(key) == waiter.kind

    def _attempt(self, waiter: Waiter, first: bool = False) -> None:
        if waiter.read is not None:  # a read: now, here
            result = waiter.read(waiter.line)
            if popped(result):
                self._finish(waiter, result)
            return
        if not self._leads():  # (step_down drops them all; this is the safety net)
            self._moved(waiter)
            return
        waiter.in_flight, waiter.dirty = True, False
        try:
            future = self._submit(TypedOp(tuple(waiter.line), waiter.request_id(),
                                          self._now_ms()))
        except (Unavailable, NotLeader):  # not proposed: try again shortly
            self._retry_later(waiter, first)
            return
        future.add_done_callback(lambda done: self._attempted(waiter, done, first))

    def _retry_later(self, waiter: Waiter, first: bool) -> None:
        asyncio.get_running_loop().call_later(RETRY_S, self._retry, waiter, first)

    def _retry(self, waiter: Waiter, first: bool) -> None:
        if waiter.done:
            return
        waiter.in_flight = False
        self._attempt(waiter, first)

    def _attempted(self, waiter: Waiter, done: asyncio.Future[Result], first: bool) -> None:
        if waiter.done:  # dropped (this node stopped leading): the next leader settles it
            return
        if done.cancelled():
            self._retry_later(waiter, first)
            return
        error = done.exception()
        if error is not None:
            # unknown outcome: the same request id again, until the log says; not
            # applied: the same id is as good as a new one
            if isinstance(error, CommitTimeout | Unavailable | NotLeader):
                self._retry_later(waiter, first)
            else:
                log.warning("a blocked pop failed: %s", error)
                self._finish(waiter, None, error)
            return
        result = done.result()
        waiter.in_flight = False
        if popped(result) or (first and not result.ok):  # (an error answers at once)
            self._finish(waiter, result)
            return
        waiter.next_attempt()  # nothing there (someone else won it): stay first in line
        if waiter.stopping is not False:
            self._finish(waiter, None)
        elif waiter.dirty:
            self._wake_first(waiter.keys)

    def _moved(self, waiter: Waiter) -> None:
        self._drop(waiter)
        if not waiter.future.done():
            waiter.future.set_exception(Unavailable("this node no longer leads"))

    def _drop(self, waiter: Waiter) -> None:
        """Take ``waiter`` out of every line (its future is the caller's to resolve)."""
        waiter.done = True
        if waiter._timer is not None:
            waiter._timer.cancel()
        for key in waiter.keys:
            queue = self._by_key.get(key)
            if queue is not None:
                queue.remove(waiter)
                if not queue:
                    del self._by_key[key]
        if self._parked.get(waiter._base_id) is waiter:
            del self._parked[waiter._base_id]
        self._count -= 1

    def _finish(self, waiter: Waiter, result: Result | None,
                error: BaseException | None = None) -> None:
        self._drop(waiter)
        stopped = waiter.stopping
        if error is None and result is None and isinstance(stopped, BaseException):
            error = stopped
        if not waiter.future.done():
            if error is not None:
                waiter.future.set_exception(error)
            else:
                waiter.future.set_result(result)
        self._wake_first(waiter.keys)  # the next in line may be servable too

    def _check_all(self) -> None:
        self._recheck = None
        if not self._count:
            return
        self._wake_first(list(self._by_key))
        self._recheck = asyncio.get_running_loop().call_later(RECHECK_S, self._check_all)


class Blocked:
    """A client's blocked pop, held on the node it is connected to; its waiter is
    parked on the leader, reached by ``call_leader`` and followed across changes of
    leader (the module's docstring). ``future`` resolves with the pop's result, or
    None at the timeout."""

    __slots__ = ("_call", "_deadline", "_error", "_send_to_leader", "_sends", "_stopped_at",
                 "future")

    def __init__(self, send: Callable[[BlockCall], asyncio.Future[Result | None]],
                 call: BlockCall) -> None:
        loop = asyncio.get_running_loop()
        self.future: asyncio.Future[Result | None] = loop.create_future()
        self._send_to_leader = send  # the leader's ``Waiters.take``, here or over the wire
        self._call = call
        self._deadline = loop.time() + call.timeout_s if call.timeout_s > 0 else None
        self._error: BaseException | None = None  # CLIENT UNBLOCK ... ERROR's
        self._sends = 0
        self._stopped_at: float | None = None
        if self._deadline is not None:
            loop.call_at(self._deadline + GRACE_S, self.stop)
        self._send()

    def stop(self, error: BaseException | None = None) -> bool:
        """End the wait (CLIENT UNBLOCK, a hang-up, or no leader answered in time): the
        leader answers with a nil - or with the element an attempt in flight popped.
        False if it had already ended."""
        if self.future.done() or self._stopped_at is not None:
            return False
        self._error = error
        self._stopped_at = asyncio.get_running_loop().time()
        self._call = self._call.stopping()
        self._send()
        return True

    def _send(self) -> None:
        if self.future.done():
            return
        loop = asyncio.get_running_loop()
        timeout_s = 0.0 if self._deadline is None else \
            max(self._deadline - loop.time(), _MIN_TIMEOUT_S)
        self._sends += 1
        sent = self._sends
        try:
            answer = self._send_to_leader(self._call.sent(timeout_s, resumed=sent > 1))
        except RaftKVError:
            self._again()
            return
        answer.add_done_callback(lambda done: self._answered(done, sent))

    def _answered(self, done: asyncio.Future[Result | None], sent: int) -> None:
        if self.future.done():
            return
        error = done.exception() if not done.cancelled() else Unavailable("cancelled")
        if isinstance(error, Unavailable | NotLeader):
            if sent == self._sends:  # (not an earlier call's late failure)
                self._again()
            return
        if error is not None:
            self.future.set_exception(error)
            return
        result = done.result()
        if result is None and self._error is not None:
            self.future.set_exception(self._error)
        else:
            self.future.set_result(result)

    def _again(self) -> None:
        loop = asyncio.get_running_loop()
        if self._stopped_at is not None and loop.time() - self._stopped_at > SETTLE_S:
            self.future.set_exception(CommitTimeout(
                "no leader answered for a blocked command; whether it popped is unknown"))
            return
        loop.call_later(RETRY_S, self._send)


class BlockCall:
    """What a ``Blocked`` sends the leader: its waiter's id, the pop and its keys, and
    whether this is a repeat (``resumed``: settle earlier attempts first) and whether
    the client stops waiting (``stop``: settle, never park)."""

    __slots__ = ("base_id", "group", "keys", "kind", "line", "resumed", "stop",
                 "timeout_s")

    def __init__(self, base_id: bytes, line: list[bytes], keys: list[bytes], kind: int,
                 timeout_s: float, group: bytes | None = None, resumed: bool = False,
                 stop: bool = False) -> None:
        self.base_id = base_id
        self.line = line
        self.keys = keys
        self.kind = kind
        self.timeout_s = timeout_s  # 0: for ever
        self.group = group  # XREADGROUP's: ready when a stream has entries it has not read
        self.resumed = resumed
        self.stop = stop

    def stopping(self) -> BlockCall:
        return BlockCall(self.base_id, self.line, self.keys, self.kind, self.timeout_s,
                         self.group, self.resumed, True)

    def sent(self, timeout_s: float, resumed: bool) -> BlockCall:
        """This call as sent now: with the time left, and whether it was sent before."""
        return BlockCall(self.base_id, self.line, self.keys, self.kind, timeout_s,
                         self.group, resumed, self.stop)

    def encode(self) -> bytes:
        """``flags u8 | kind u8 | timeout f64 | base id | [group] | keys | line``."""
        flags = self.resumed | self.stop << 1 | (self.group is not None) << 2
        out = bytearray(_HEAD.pack(flags, self.kind, self.timeout_s))
        for part in (self.base_id, *(() if self.group is None else (self.group,))):
            out += U32.pack(len(part)) + part
        for parts in (self.keys, self.line):
            out += U32.pack(len(parts))
            for part in parts:
                out += U32.pack(len(part)) + part
        return bytes(out)

    @staticmethod
    def decode(payload: bytes) -> BlockCall:
        """Raises ValueError on a malformed payload."""
        r = BinaryReader(payload, ValueError)
        flags, kind, timeout_s = r.fixed(_HEAD)
        base_id = r.blob()
        group = r.blob() if flags & 4 else None
        keys = [r.blob() for _ in range(r.fixed(U32)[0])]
        line = [r.blob() for _ in range(r.fixed(U32)[0])]
        if not base_id or not line or not keys:
            raise ValueError("a blocked pop needs an id, a line and keys")
        return BlockCall(base_id, line, keys, kind, timeout_s, group, bool(flags & 1),
                         bool(flags & 2))


_HEAD: Final = struct.Struct("<BBd")


def encode_answer(result: Result | None) -> bytes:
    """The leader's answer to a BlockCall: ``0`` (a nil: timed out or stopped) or ``1``
    and the pop's encoded result."""
    return b"\x00" if result is None else b"\x01" + encode_result(result)


def decode_answer(answer: bytes) -> Result | None:
    return None if answer[:1] == b"\x00" else decode_result(answer[1:])


def decoded(answer: asyncio.Future[bytes]) -> asyncio.Future[Result | None]:
    """The result in a leader's answer (``encode_answer``), when it comes."""
    return _relay(answer, decode_answer)


def _relay(source: asyncio.Future[S], transform: Callable[[S], T],
           target: asyncio.Future[T] | None = None) -> asyncio.Future[T]:
    """``target`` (by default a new future) resolved with ``transform`` of what
    ``source`` resolves with, or failed with its error (Unavailable if cancelled)."""
    out: asyncio.Future[T] = target if target is not None else \
        asyncio.get_running_loop().create_future()

    def done(f: asyncio.Future[S]) -> None:
        if out.done():
            return
        error = f.exception() if not f.cancelled() else Unavailable("cancelled")
        if error is not None:
            out.set_exception(error)
        else:
            out.set_result(transform(f.result()))

    source.add_done_callback(done)
    return out


def _same(result: Result | None) -> Result | None:
    return result


# What a front holds while its client is blocked: a pop (Blocked) or an XREAD (Waiter).
Waiting: TypeAlias = "Blocked | Waiter"


def new_waiter_id() -> bytes:
    """A fresh waiter id: its pops' request ids are this and a 4-byte attempt number."""
    return b"blk" + os.urandom(9)


def popped(result: Result) -> bool:
    """Whether a pop's result took something (not a nil, not an error)."""
    if not isinstance(result, TypedResult) or not result.ok:
        return False
    return result.reply is not None and not isinstance(result.reply, NilArray)


def _touched(command: Command, result: Result) -> set[bytes]:
    if isinstance(result, TypedResult):
        return {key for _, key, _ in result.events}
    if isinstance(command, Txn) and isinstance(result, TxnResult):
        return set(itertools.chain.from_iterable(
            _touched(op, sub) for op, sub in zip(command.ops, result.results, strict=False)))
    target = getattr(command, "target", None)  # RENAME and COPY onto a waited key
    return {target} if isinstance(target, bytes) else set()
