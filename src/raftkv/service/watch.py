"""Watches: the changes to a key or a prefix, pushed to each watcher as this node
applies them (DATA-MODEL.md section 3).

Every watcher reads the one change history the state machine keeps. A watch starts
after a revision: the changes the history still holds after it are delivered at
once, then every change as it is applied, in revision order, all the changes of one
revision together (so a revision is a safe place to resume from). When the history
no longer reaches back far enough the watcher is told so (``compacted``, with the
current revision) - never a silent gap - and the watch ends.

Fan-out is done once per loop turn, not once per entry: the entries applied in one
turn are read from the history in one pass, matched once per distinct filter (1,000
watchers of one prefix share one match), and handed to each watcher. A watcher's
consumer (the HTTP front's event stream) may refuse more (a slow client): the watch
then ends, and the consumer tells its client where to resume.

Served from any node: a follower's history holds what it has applied, never what it
has only received.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final, Protocol

from raftkv.core.history import FLUSH, Compacted, Event, History

PROGRESS_CHECK_S: Final = 0.1  # how often idle watchers are looked at for a progress event


class Consumer(Protocol):
    """Where a watch's events go."""

    def changes(self, events: list[Event]) -> bool:
        """The next changes (whole revisions, oldest first); False: take no more (the
        watch ends)."""

    def progress(self, revision: int) -> None:
        """Nothing changed for a while; every change up to ``revision`` was delivered."""

    def compacted(self, compacted: int, current: int) -> None:
        """The history no longer holds the changes asked for (the watch ends)."""


class Watch:
    """One watcher: a key (``exact``) or a prefix, and how far it has been served."""

    __slots__ = ("_watches", "consumer", "exact", "last_sent_s", "position", "prefix",
                 "progress_s")

    def __init__(self, watches: Watches, prefix: bytes, exact: bool, position: int,
                 consumer: Consumer, progress_s: float) -> None:
        self._watches = watches
        self.prefix = prefix
        self.exact = exact
        self.position = position  # every change up to this revision was delivered
        self.consumer = consumer
        self.progress_s = progress_s
        self.last_sent_s = time.monotonic()

    @property
    def filter(self) -> tuple[bytes, bool]:
        return self.prefix, self.exact

    def cancel(self) -> None:
        """Stop delivering (the client went away); safe to call twice."""
        self._watches.remove(self)

    def deliver(self, matched: list[Event], through: int) -> bool:
        """Hand over the ``matched`` events this watcher has not had, and move it to
        ``through``; False when its consumer refused them."""
        position = self.position
        if matched and matched[-1][0] > position:
            fresh = matched if matched[0][0] > position else \
                [event for event in matched if event[0] > position]
            self.last_sent_s = time.monotonic()
            if not self.consumer.changes(fresh):
                return False
        self.position = max(position, through)
        return True


class Watches:
    """Every watch of this node, fed from the state machine's history."""

    def __init__(self, history: Callable[[], History], applied: Callable[[], int]) -> None:
        self._history = history
        self._applied = applied
        self._by_filter: dict[tuple[bytes, bool], list[Watch]] = {}
        self._position = 0  # the history has been fanned out up to this revision
        self._scheduled = False

    def __len__(self) -> int:
        return sum(len(group) for group in self._by_filter.values())

    def observe(self, command: object, result: object) -> None:
        """After each applied entry: fan out once this loop turn's entries are in."""
        if self._by_filter and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.dispatch)

    def start(self, key_or_prefix: bytes, exact: bool, after: int, consumer: Consumer,
              progress_s: float) -> Watch | None:
        """Watch the changes after revision ``after``: those the history holds are
        delivered now. None when the watch ended at once (compacted, or refused)."""
        watch = Watch(self, key_or_prefix, exact, after, consumer, progress_s)
        current = self._applied()
        try:
            backlog = self._history().after(after, current, None if exact else key_or_prefix)
        except Compacted as gone:
            consumer.compacted(gone.compacted, gone.current)
            return None
        if exact:
            backlog = [event for event in backlog if _matches(event, key_or_prefix, True)]
        if not watch.deliver(backlog, current):
            return None
        if not self._by_filter:
            self._position = current
        self._by_filter.setdefault(watch.filter, []).append(watch)
        return watch

    def remove(self, watch: Watch) -> None:
        group = self._by_filter.get(watch.filter)
        if group is not None and watch in group:
            group.remove(watch)
            if not group:
                del self._by_filter[watch.filter]

    def dispatch(self) -> None:
        """Hand every watcher the changes applied since the last fan-out."""
        self._scheduled = False
        if not self._by_filter:
            return
        current = self._applied()
        if current <= self._position:
            return
        try:
            events = self._history().after(self._position, current)
        except Compacted as gone:  # (more changed in one turn than the history keeps)
            self._position = current
            for group in list(self._by_filter.values()):
                for watch in list(group):
                    self.remove(watch)
                    watch.consumer.compacted(gone.compacted, gone.current)
            return
        self._position = current
        for (prefix, exact), group in list(self._by_filter.items()):
            matched = [event for event in events if _matches(event, prefix, exact)] \
                if prefix or exact else events
            for watch in list(group):
                if not watch.deliver(matched, current):
                    self.remove(watch)

    def tick(self, now_s: float) -> None:
        """A progress event to every watcher idle for its interval."""
        if self._scheduled:
            return  # (changes are on their way; progress after them)
        for group in list(self._by_filter.values()):
            for watch in list(group):
                if now_s - watch.last_sent_s >= watch.progress_s:
                    watch.last_sent_s = now_s
                    watch.position = max(watch.position, self._position)
                    watch.consumer.progress(watch.position)

    async def run(self) -> None:
        """Progress events, until cancelled."""
        while True:
            await asyncio.sleep(PROGRESS_CHECK_S)
            self.tick(time.monotonic())


def _matches(event: Event, prefix: bytes, exact: bool) -> bool:
    key = event[1]
    if event[2] == FLUSH:
        return True
    return key == prefix if exact else key.startswith(prefix)
