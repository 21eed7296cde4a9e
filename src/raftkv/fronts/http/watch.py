"""``GET /v1/watch``: the changes to a key or a prefix as Server-Sent Events
(CONTRACT.md; the watching itself is ``service/watch.py``).

    GET /v1/watch?prefix=app/            every change under app/ from now on
    GET /v1/watch?key=app/x&fromRevision=42
    Last-Event-ID: 57                    resume after revision 57

Each change is one event whose ``id`` is its revision and whose name is its kind
(``put``, ``delete``, ``expire``, ``evict``, ``typed`` - a hash, list, set, sorted set
or stream changed, ``op`` names how - and ``flush``), with a JSON ``data`` line:

    id: 58
    event: put
    data: {"revision":58,"kind":"put","key":"app/x","value":"1","createRevision":42,"version":3}

The changes of one revision are sent together, so ``Last-Event-ID`` (what browsers'
EventSource sends when it reconnects) resumes without a gap or a repeat. The stream
opens with a ``progress`` event naming the revision it starts after, and repeats one
when nothing changed for ``progressMs``. It ends with one event saying why:

- ``compacted`` - ``{"compactRevision": c, "revision": r}``: the history no longer
  holds the changes asked for; read the keys again and watch from ``r + 1``;
- ``cut`` - ``{"resumeAfter": n}``: the client read too slowly and more than
  ``http.watch_buffer_bytes`` waited for it; every change up to ``n`` was sent, so
  reconnect with ``Last-Event-ID: n``.

Without ``fromRevision`` a watch starts at a linearizable point: every write that
completed before it was asked for is behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson

from raftkv.core.history import Event, EventKind
from raftkv.deferred import when
from raftkv.errors import InvalidArgument
from raftkv.fronts.http import validation as v
from raftkv.fronts.http.messages import Reply, Request, Sink, Stream, text_field
from raftkv.fronts.http.middleware import may_read
from raftkv.service.service import KVService

_KIND_NAMES: Final = {int(kind): kind.name.lower() for kind in EventKind}
DEFAULT_PROGRESS_MS: Final = 10_000
MAX_REVISION: Final = 2**63 - 1


class WatchApi:
    def __init__(self, service: KVService, buffer_bytes: int) -> None:
        self.service = service
        self.buffer_bytes = buffer_bytes

    def handle(self, request: Request) -> Reply:
        query = request.query
        if ("key" in query) == ("prefix" in query):
            raise InvalidArgument("give exactly one of the query parameters 'key' and 'prefix'")
        exact = "key" in query
        if exact:
            target = v.key_from_text(query["key"])
        else:
            target = query["prefix"].encode("utf-8")
            if len(target) > 1024:
                raise InvalidArgument("the prefix is longer than 1024 bytes")
        may_read(request, target)
        progress_s = v.query_int(request, "progressMs", DEFAULT_PROGRESS_MS, 100,
                                 86_400_000) / 1000
        start = self.service.watch_start(_from_revision(request))

        def open_stream(after: int) -> Stream:
            def start_events(sink: Sink) -> Callable[[], None]:
                events = _EventStream(sink, self.buffer_bytes, after)
                watch = self.service.watch_changes(target, exact, after, events, progress_s)
                return watch.cancel if watch is not None else _nothing

            return Stream(start_events)

        return when(start, open_stream)


def _from_revision(request: Request) -> int | None:
    """Where to start: after ``Last-Event-ID`` (a reconnect), else from
    ``fromRevision``, else None (now)."""
    last = request.headers.get(b"last-event-id")
    if last is not None:
        if not last.isdigit() or int(last) >= MAX_REVISION:
            raise InvalidArgument("Last-Event-ID must be a revision (an event's id)")
        return int(last) + 1
    if "fromRevision" in request.query:
        return v.query_int(request, "fromRevision", 1, 1, MAX_REVISION)
    return None


def _nothing() -> None:
    return None


class _EventStream:
    """A watch's consumer: renders its events as SSE text into the response."""

    __slots__ = ("limit", "sent", "sink")

    def __init__(self, sink: Sink, limit: int, after: int) -> None:
        self.sink = sink
        self.limit = limit
        self.sent = after  # every change up to this revision was written
        sink.write(_event(after, "progress", {"revision": after}))

    def changes(self, events: list[Event]) -> bool:
        if self.sink.buffered_bytes() > self.limit:
            self._end("cut", {"resumeAfter": self.sent,
                              "message": "the client read too slowly; resume after "
                                         f"revision {self.sent}"})
            return False
        self.sink.write(b"".join([_event(event[0], _KIND_NAMES[event[2]], _change(event))
                                  for event in events]))
        self.sent = events[-1][0]
        return True

    def progress(self, revision: int) -> None:
        self.sent = max(self.sent, revision)
        self.sink.write(_event(self.sent, "progress", {"revision": self.sent}))

    def compacted(self, compacted: int, current: int) -> None:
        self._end("compacted", {"compactRevision": compacted, "revision": current,
                                "message": f"the history starts after revision {compacted}; "
                                           "read again and watch from the current revision"})

    def _end(self, name: str, data: dict[str, Any]) -> None:
        self.sink.write(b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(data)))
        self.sink.end()


def _event(revision: int, name: str, data: dict[str, Any]) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (revision, name.encode(), orjson.dumps(data))


def _change(event: Event) -> dict[str, Any]:
    revision, key, kind, value, create_revision, version = event
    out: dict[str, Any] = {"revision": revision, "kind": _KIND_NAMES[kind]}
    if kind != EventKind.FLUSH:
        text_field(key, "key", out)
    if value is not None:
        text_field(value, "op" if kind == EventKind.TYPED else "value", out)
    if version:
        out["createRevision"] = create_revision
        out["version"] = version
    return out
