"""A linearizability checker for one register (one key): Wing & Gong's search with
Lowe's memoization, as Porcupine and Knossos do it.

An operation is invoked at ``call`` and completes at ``ret``. Its outcome decides
how it enters the history:

* ``ok``   - it happened, between call and ret, with the observed result;
* ``fail`` - it definitely did not happen (HTTP 503): left out;
* ``info`` - unknown (504, a timeout, a dropped connection): it may have happened at
  any point after ``call``, or never; modelled as ``ret = inf``, since taking effect
  after everything else is the same as never for what was observed.

The register starts as ``None`` (absent). Kinds: ``write`` (arg = value), ``read``
(result = value seen, None for 404), ``cas`` (arg = (expected, new), result = True
when it swapped, False on 412).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class Op:
    process: int
    kind: str  # "read" | "write" | "cas"
    arg: Any
    call: float
    ret: float = math.inf
    result: Any = None
    outcome: str = "ok"  # "ok" | "fail" | "info"


def _step(state: Any, op: Op) -> tuple[bool, Any]:
    if op.kind == "write":
        return True, op.arg
    if op.kind == "read":
        return (op.outcome != "ok" or state == op.result), state
    expected, new = op.arg
    if op.outcome != "ok":  # unknown: at this point it swapped if it could, else did nothing
        return True, (new if state == expected else state)
    if op.result:
        return state == expected, new
    return state != expected, state


class _Node:
    __slots__ = ("is_call", "match", "next", "op", "op_id", "prev")

    def __init__(self, op: Op | None, op_id: int, is_call: bool) -> None:
        self.op = op
        self.op_id = op_id
        self.is_call = is_call
        self.match: _Node | None = None  # a call's return node
        self.prev: _Node | None = None
        self.next: _Node | None = None


def linearizable(history: Iterable[Op], initial: Any = None) -> bool:
    ops = [op for op in history
           if op.outcome != "fail" and not (op.kind == "read" and op.outcome == "info")]
    events = []
    for i, op in enumerate(ops):
        events.append((op.call, 0, i))
        events.append((op.ret, 1, i))
    events.sort()
    head = _Node(None, -1, False)
    tail = head
    calls: dict[int, _Node] = {}
    for _, is_return, i in events:
        node = _Node(ops[i], i, not is_return)
        if is_return:
            calls[i].match = node
        else:
            calls[i] = node
        node.prev, tail.next = tail, node
        tail = node

    def lift(call: _Node) -> None:
        for node in (call, call.match):
            assert node is not None and node.prev is not None
            node.prev.next = node.next
            if node.next is not None:
                node.next.prev = node.prev

    def unlift(call: _Node) -> None:
        for node in (call.match, call):
            assert node is not None and node.prev is not None
            node.prev.next = node
            if node.next is not None:
                node.next.prev = node

    state = initial
    linearized = 0
    cache: set[tuple[int, Any]] = set()
    stack: list[tuple[_Node, Any]] = []
    entry = head.next
    while head.next is not None:
        assert entry is not None
        if entry.is_call:
            assert entry.op is not None
            ok, new_state = _step(state, entry.op)
            if ok:
                key = (linearized | (1 << entry.op_id), new_state)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state, linearized = new_state, key[0]
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:  # a return we cannot move past: undo the last choice
            if not stack:
                return False
            entry, state = stack.pop()
            linearized &= ~(1 << entry.op_id)
            unlift(entry)
            entry = entry.next
    return True
