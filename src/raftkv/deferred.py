"""A value that may have to wait: the one deferred-value primitive of the service and
the fronts.

Most reads are answered at once (a single node, a stale read); a write waits for its
commit and a linearizable read on a follower for its read barrier. So a call returns
either the value itself or a ``Deferred``: one future plus ``finish``, which makes the
value from that future once it is done. A layer with work to do on the value wraps
``finish`` (``then``) instead of chaining another future, so a reply costs the
server one done callback however many layers shape it. ``when`` is the one way to
apply a function to any of the three forms (value, future, deferred).

The service returns values or Deferreds, the HTTP front a ``Response`` or a
``Deferred[Response]``, the RESP front reply bytes or a ``Deferred[bytes]``; each
server adds one done callback to ``future`` and calls ``result()`` when it fires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeAlias, TypeVar

T = TypeVar("T")
U = TypeVar("U")


class Deferred(Generic[T]):
    """``finish(future)`` is the value, once ``future`` is done (it raises what the
    future, or the making of the value, raised)."""

    __slots__ = ("finish", "future")

    def __init__(self, future: asyncio.Future[Any],
                 finish: Callable[[asyncio.Future[Any]], T]) -> None:
        self.future = future
        self.finish = finish

    def then(self, fn: Callable[[T], U]) -> Deferred[U]:
        """The deferred ``fn(value)``: the same future, one more step in ``finish``."""
        finish = self.finish
        return Deferred(self.future, lambda done: fn(finish(done)))

    def result(self) -> T:
        """The value; call once ``future`` is done."""
        return self.finish(self.future)

    async def wait(self) -> T:
        await asyncio.wait((self.future,))
        return self.result()

    def __await__(self) -> Generator[Any, None, T]:
        return self.wait().__await__()


MaybeDeferred: TypeAlias = "T | Deferred[T]"


def when(value: T | Deferred[T] | asyncio.Future[T], fn: Callable[[T], U]) -> U | Deferred[U]:
    """``fn(value)`` now for a plain value; deferred for a future or a Deferred."""
    if isinstance(value, Deferred):
        return value.then(fn)
    if isinstance(value, asyncio.Future):
        return Deferred(value, lambda done: fn(done.result()))
    return fn(value)


def after(work: Awaitable[T], fn: Callable[[T], U]) -> Deferred[U]:
    """``fn`` of what ``work`` gives - a future, or a coroutine then run as a task -
    deferred (a handler whose answer needs several awaited steps)."""
    future: asyncio.Future[T] = asyncio.ensure_future(work)
    return Deferred(future, lambda done: fn(done.result()))
