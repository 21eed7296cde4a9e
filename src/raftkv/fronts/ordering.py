"""Replies in request order: the one pipelining rule of the HTTP and RESP servers.

A client may send many requests before reading a reply (HTTP/1.1 pipelining, RFC
9112 section 9.3.2; any Redis client). Replies leave in request order. Writes run at
once, in arrival order - the log orders them and they share a group commit - but a
read that follows an unfinished write of the same connection must see it (Redis runs
a pipeline sequentially, so GET after SET sees the SET): such a read, and everything
after it, waits its turn and runs when it reaches the head of the queue.

Each queued reply is in one of three states; this table is the whole behaviour:

    event                                  state          ->  state
    arrives; the queue is waiting, or it   -              ->  TURN (not run yet)
      is a read behind an unfinished write
    arrives otherwise                      -              ->  runs: WAIT or READY
    reaches the head of the queue          TURN           ->  runs: WAIT or READY
    its future is done                     WAIT           ->  READY
    is the head                            READY          ->  sent, removed

The queue is sans-IO: a server gives it ``run`` (request -> reply or Deferred reply),
``watch`` (call me back when this Deferred's future is done), ``fail`` (the reply for
a Deferred whose ``result()`` raised) and ``ends`` (whether the request it just ran
ends the connection, as QUIT does: what waits after it never runs), and writes what
``ready()`` hands back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from raftkv.deferred import Deferred

T = TypeVar("T")  # a request
R = TypeVar("R")  # a reply

_TURN: Final = 0  # not run: waiting for every request before it to finish
_WAIT: Final = 1  # run; its reply waits on a future
_READY: Final = 2


class Entry:
    """One queued request and its reply: None while it waits its turn, a Deferred
    while it waits on a future, the reply itself once ``ready`` hands it out."""

    __slots__ = ("is_write", "reply", "request", "state")

    def __init__(self, state: int, request: Any, reply: Any, is_write: bool) -> None:
        self.state = state
        self.request = request
        self.reply = reply
        self.is_write = is_write


class InOrder(Generic[T, R]):
    """One connection's replies still to send, in request order."""

    __slots__ = ("_ends", "_entries", "_fail", "_run", "_unfinished_writes", "_waiting_turn",
                 "_watch")

    def __init__(self, run: Callable[[T], R | Deferred[R]],
                 watch: Callable[[Deferred[R]], None],
                 fail: Callable[[T, BaseException], R],
                 ends: Callable[[], bool] = lambda: False) -> None:
        self._run = run
        self._watch = watch
        self._fail = fail
        self._ends = ends  # True once the request just run ends the connection (QUIT)
        self._entries: deque[Entry] = deque()
        self._waiting_turn = 0  # entries in TURN
        self._unfinished_writes = 0  # writes queued and not yet sent

    def __len__(self) -> int:
        return len(self._entries)

    def must_wait(self, is_write: bool) -> bool:
        """Whether a request arriving now waits its turn instead of running."""
        return bool(self._waiting_turn) or (not is_write and self._unfinished_writes > 0)

    def wait_turn(self, request: T, is_write: bool) -> None:
        """Queue ``request`` to run when it reaches the head (state TURN)."""
        self._entries.append(Entry(_TURN, request, None, is_write))
        self._waiting_turn += 1
        self._unfinished_writes += is_write

    def add(self, request: T, reply: R | Deferred[R], is_write: bool) -> None:
        """Queue the reply of a request that ran on arrival (WAIT or READY); the server
        watches a Deferred one itself (``watch`` is for those run by ``ready``)."""
        state = _WAIT if isinstance(reply, Deferred) else _READY
        self._entries.append(Entry(state, request, reply, is_write))
        self._unfinished_writes += is_write

    def ready(self) -> list[Entry]:
        """Every entry whose reply can leave now (``request``, and ``reply`` resolved),
        in order, removed from the queue; requests that reach the head on the way run."""
        out: list[Entry] = []
        entries = self._entries
        while entries:
            entry = entries[0]
            if entry.state == _TURN:
                self._waiting_turn -= 1
                entry.reply = self._run(entry.request)
                if self._ends():  # its reply is the last: what waits after it never runs
                    self._drop_after_head()
                if isinstance(entry.reply, Deferred):
                    entry.state = _WAIT
                    self._watch(entry.reply)
                else:
                    entry.state = _READY
            reply = entry.reply
            if entry.state == _WAIT:
                if not reply.future.done():
                    break
                try:
                    reply = reply.result()
                except (Exception, asyncio.CancelledError) as exc:  # the server's error reply
                    reply = self._fail(entry.request, exc)
            entry.reply = reply
            entries.popleft()
            self._unfinished_writes -= entry.is_write
            out.append(entry)
        return out

    def _drop_after_head(self) -> None:
        entries = self._entries
        while len(entries) > 1:  # (all waiting their turn: none has run)
            dropped = entries.pop()
            self._waiting_turn -= 1
            self._unfinished_writes -= dropped.is_write

    def clear(self) -> int:
        """Forget every entry (the connection is gone); how many there were."""
        count = len(self._entries)
        self._entries.clear()
        self._waiting_turn = self._unfinished_writes = 0
        return count
