"""Blocking commands (DATA-MODEL.md section 5): a BLPOP, BLMOVE, BZPOPMIN, XREADGROUP...
that finds nothing to pop waits here, outside the state machine, until it can be
served or its timeout passes. (An XREAD BLOCK waits here too, but reads: when a key
it waits on changes, it reads this node's state again, with no log entry.)

A waiter holds the plain pop it stands for (LMPOP, LMOVE, ZMPOP...) as a command
line. Only a logged pop changes state, so replicas never decide who is served: when
an applied entry touches one of its keys (any node applies every entry, so this
works the same on a follower) and this node's state shows something to pop there,
the **first** waiter on that key proposes its pop as an ordinary write with a request
id of its own. If the pop finds nothing (another client, here or on another node, won
the element), the waiter stays first in line and its next attempt takes a new id.

Each attempt is applied at most once: one whose outcome is unknown (the leader died
mid-commit) is retried with the same request id until the log says what it did, so a
leader change neither loses nor duplicates an element. Waiters are served in arrival
order per key on this node; clients of different nodes are ordered by the log alone.
Timeouts run on this node's clock. An attempt in flight when the timeout passes is
let finish: if it popped, the client gets the element.

A waiter proposes only when this node's state holds its kind of value at one of its
keys, and a fallback check once a second catches what no applied entry announced (a
snapshot installed on a follower): idle waiters cost no log entries.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Final

from raftkv.core.commands import Command, Result, Txn, TxnResult, TypedOp, TypedResult
from raftkv.core.typed.replies import NilArray
from raftkv.errors import CommitTimeout, NotLeader, Unavailable

log = logging.getLogger(__name__)

RETRY_S: Final = 0.05  # between attempts whose outcome is unknown or not applied
RECHECK_S: Final = 1.0


class Waiter:
    """One blocked command: its pop, its keys, and the future its client waits on
    (resolved with the pop's result, or None when the timeout passed)."""

    __slots__ = ("_attempt", "_base_id", "_timer", "dirty", "done", "future", "in_flight",
                 "keys", "kind", "line", "read", "ready", "stopping")

    def __init__(self, line: list[bytes], keys: list[bytes], kind: int,
                 future: asyncio.Future[Result | None],
                 ready: Callable[[bytes], bool] | None = None,
                 read: Callable[[list[bytes]], Result] | None = None) -> None:
        self.line = line
        self.keys = list(dict.fromkeys(keys))
        self.kind = kind  # what it pops from (a containers.Kind)
        self.ready = ready  # whether a key has something for it (default: holds ``kind``)
        self.read = read  # a read (XREAD): run on this node's state, not proposed
        self.future = future
        self._base_id = b"blk" + os.urandom(9)
        self._attempt = 0
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
    """The blocked commands of this node, in arrival order per key."""

    def __init__(self, submit: Callable[[Command], asyncio.Future[Result]],
                 holds: Callable[[bytes], int | None], now_ms: Callable[[], int]) -> None:
        self._submit = submit
        self._holds = holds  # the Kind this node's state holds at a key (None: nothing)
        self._now_ms = now_ms
        self._by_key: dict[bytes, deque[Waiter]] = {}
        self._count = 0
        self._recheck: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return self._count

    def wait(self, line: list[bytes], keys: list[bytes], kind: int, timeout_s: float,
             ready: Callable[[bytes], bool] | None = None,
             read: Callable[[list[bytes]], Result] | None = None) -> Waiter:
        """Run the pop ``line`` on ``keys`` (holding ``kind``) now if this node's state
        shows anything there - its error, a WRONGTYPE say, is the answer then - and
        else park it until it pops something or ``timeout_s`` passes (0: never).
        ``ready(key)`` says when a key has something for it (by default: when it holds
        ``kind``); with ``read``, the line is a read, run here instead of proposed
        (XREAD: the caller has made its first attempt)."""
        loop = asyncio.get_running_loop()
        waiter = Waiter(line, keys, kind, loop.create_future(), ready, read)
        for key in waiter.keys:
            self._by_key.setdefault(key, deque()).append(waiter)
        self._count += 1
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

    def _finish(self, waiter: Waiter, result: Result | None,
                error: BaseException | None = None) -> None:
        waiter.done = True
        if waiter._timer is not None:
            waiter._timer.cancel()
        for key in waiter.keys:
            queue = self._by_key.get(key)
            if queue is not None:
                queue.remove(waiter)
                if not queue:
                    del self._by_key[key]
        self._count -= 1
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
