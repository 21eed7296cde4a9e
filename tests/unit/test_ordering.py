"""The pipelining rule both servers share (fronts/ordering.py), driven without
sockets: requests are ("r"|"w", name), run appends the name to a log so a test sees
what ran when, and a write's reply waits on a future the test resolves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from raftkv.deferred import Deferred
from raftkv.fronts.ordering import InOrder


class Conn:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ran: list[str] = []
        self.futures: dict[str, asyncio.Future[str]] = {}
        self.sent: list[str] = []
        self.ending = ""
        self.queue: InOrder[tuple[str, str], str] = InOrder(
            self.run, lambda d: None, lambda req, exc: f"error:{req[1]}",
            lambda: self.ran[-1] == self.ending if self.ran else False)

    def run(self, request: tuple[str, str]) -> str | Deferred[str]:
        kind, name = request
        self.ran.append(name)
        if kind == "w":  # a write waits for its commit
            future = self.futures[name] = self.loop.create_future()
            return Deferred(future, lambda done: f"{name}:{done.result()}")
        return f"{name}:read after {','.join(self.ran[:-1])}"

    def arrive(self, kind: str, name: str) -> None:
        write, queue = kind == "w", self.queue
        if queue.must_wait(write):
            queue.wait_turn((kind, name), write)
        else:
            queue.add((kind, name), self.run((kind, name)), write)
        self.flush()

    def commit(self, name: str, outcome: str = "ok") -> None:
        self.futures[name].set_result(outcome)
        self.flush()

    def flush(self) -> None:
        self.sent += [entry.reply for entry in self.queue.ready()]


@pytest.fixture
def c() -> Iterator[Conn]:
    loop = asyncio.new_event_loop()
    yield Conn(loop)
    loop.close()


def test_replies_leave_in_request_order_whatever_order_they_finish_in(c: Conn):
    c.arrive("w", "w1")
    c.arrive("w", "w2")  # a write behind a write runs at once (the log orders them)
    assert c.ran == ["w1", "w2"] and c.sent == []
    c.commit("w2")
    assert c.sent == []  # w1 first
    c.commit("w1")
    assert c.sent == ["w1:ok", "w2:ok"] and len(c.queue) == 0


def test_a_read_behind_an_unfinished_write_runs_when_it_reaches_the_head(c: Conn):
    c.arrive("w", "w1")
    c.arrive("r", "r1")
    c.arrive("w", "w2")  # behind a waiting read: waits too, or r1 would see it
    assert c.ran == ["w1"]
    c.commit("w1")
    assert c.ran == ["w1", "r1", "w2"]  # r1 ran after w1 applied, before w2
    assert c.sent == ["w1:ok", "r1:read after w1"]
    c.commit("w2")
    assert c.sent[-1] == "w2:ok"


def test_a_read_with_no_write_before_it_runs_at_once(c: Conn):
    c.arrive("r", "r1")
    c.arrive("r", "r2")
    assert c.sent == ["r1:read after ", "r2:read after r1"]


def test_a_failed_reply_keeps_its_place(c: Conn):
    c.arrive("w", "w1")
    c.arrive("w", "w2")
    c.futures["w1"].set_exception(RuntimeError("boom"))
    c.commit("w2")
    assert c.sent == ["error:w1", "w2:ok"]


def test_what_waits_behind_a_request_that_ends_the_connection_never_runs(c: Conn):
    c.ending = "quit"
    c.arrive("w", "w1")
    c.arrive("r", "quit")
    c.arrive("w", "w2")
    c.arrive("r", "r3")
    c.commit("w1")
    assert c.ran == ["w1", "quit"] and c.sent == ["w1:ok", "quit:read after w1"]
    assert len(c.queue) == 0 and not c.queue.must_wait(False)
