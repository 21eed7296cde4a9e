"""A transaction being queued: the ops a client's commands turn into between MULTI
and EXEC, and the futures their replies wait on.

While a client is in MULTI, each of its commands runs as usual - parsed, validated,
its reply prepared - but against the service in recording mode (``KVService.record``):
a write records its command and a read records ``Read`` ops, and each gets a
placeholder future instead of a log entry or a read. EXEC submits every recorded op
as one ``Txn`` (one log entry, DATA-MODEL.md section 1) and ``settle`` resolves each
placeholder with its op's result, so every command's own reply renders unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from raftkv.core.commands import Op, Read, Result, TxnResult


class Recording:
    """The ops queued so far, and who waits for which of their results."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.incoming_bytes = 0
        # (first op, how many, placeholder, shape of what it resolves with)
        self._waiting: list[tuple[int, int, asyncio.Future[Any],
                                  Callable[[list[Result]], Any]]] = []

    def add(self, op: Op, incoming_bytes: int = 0) -> asyncio.Future[Result]:
        """Record a write; its placeholder resolves with the op's result."""
        self.incoming_bytes += incoming_bytes
        return self._wait([op], _first)

    def add_all(self, ops: list[Op], incoming_bytes: int = 0) -> asyncio.Future[Result]:
        """Record several writes that answer as one (DEL of many keys); the placeholder
        resolves with a TxnResult of theirs, as the same call outside MULTI would."""
        self.incoming_bytes += incoming_bytes
        return self._wait(ops, _as_txn)

    def read(self, keys: list[bytes], now_ms: int,
             shape: Callable[[list[Result]], Any]) -> asyncio.Future[Any]:
        """Record a read of ``keys``; its placeholder resolves with ``shape`` of their
        results (each result's ``entry`` is the key's entry at that point)."""
        return self._wait([Read(key, b"", now_ms) for key in keys], shape)

    def _wait(self, ops: list[Op], shape: Callable[[list[Result]], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((len(self.ops), len(ops), future, shape))
        self.ops += ops
        return future

    def settle(self, done: asyncio.Future[Result]) -> None:
        """Resolve every placeholder from the transaction's result (or its failure).
        Idempotent: EXEC's reply calls it too, whichever runs first."""
        waiting, self._waiting = self._waiting, []
        if not waiting:
            return
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        result = None if error is not None else done.result()
        if isinstance(result, TxnResult) and not result.succeeded:
            return  # a watched key changed: nothing ran, and no reply will be rendered
        results = result.results if isinstance(result, TxnResult) else ()
        for first, count, future, shape in waiting:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
                continue
            try:
                future.set_result(shape(list(results[first : first + count])))
            except Exception as refused:  # (a GET that met a hash: WrongType)
                future.set_exception(refused)


def _first(results: list[Result]) -> Result:
    return results[0]


def _as_txn(results: list[Result]) -> Result:
    return TxnResult(results[0].revision if results else 0, tuple(results),
                     sum(1 for r in results if r.ok))
