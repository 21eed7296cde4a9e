"""A Server-Sent Events reader for tests: a real HTTP stream read by a thread, its
events handed over through a queue, so a test can wait for them with a timeout."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Event:
    id: int | None
    name: str
    data: dict[str, Any]


class EventStream:
    """``GET url`` as an event stream, over a plain socket (so ``close()`` ends the
    reading thread at once); ``close()`` or the context ends it."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.status: int | None = None
        self.body = b""
        self.ended = threading.Event()
        self._events: queue.Queue[Event] = queue.Queue()
        parts = urlsplit(url)
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        lines = [f"GET {parts.path}?{parts.query} HTTP/1.1", f"Host: {parts.netloc}",
                 "Accept: text/event-stream", *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._opened.wait(10):
            raise TimeoutError(f"no answer from {url}")

    def _read(self) -> None:
        self._sock.settimeout(None)
        reader = self._sock.makefile("rb")
        try:
            self.status = int(reader.readline().split()[1])
            headers = {}
            while (line := reader.readline().strip()):
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            if self.status != 200:
                self.body = reader.read(int(headers.get("content-length", "0")))
                return
            self._opened.set()
            fields: dict[str, str] = {}
            text = b""
            while True:
                size = int(reader.readline().strip(), 16)
                if size == 0:
                    return
                text += reader.read(size)
                reader.readline()
                *lines, text = text.split(b"\n")
                for raw in lines:
                    line = raw.decode()
                    if line:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                        continue
                    if "event" in fields:
                        self._events.put(Event(int(fields["id"]) if "id" in fields else None,
                                               fields["event"], json.loads(fields["data"])))
                    fields = {}
        except (OSError, ValueError, IndexError):
            pass
        finally:
            self._opened.set()
            self.ended.set()

    def next(self, timeout_s: float = 10.0) -> Event:
        try:
            return self._events.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"no event from {self.url} in {timeout_s} s") from None

    def take(self, count: int, timeout_s: float = 10.0, skip_progress: bool = True
             ) -> list[Event]:
        """The next ``count`` events (progress events left out unless asked for)."""
        out: list[Event] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count:
            event = self.next(max(0.01, deadline - time.monotonic()))
            if not (skip_progress and event.name == "progress"):
                out.append(event)
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
