"""The access log: one line per HTTP request, never sampled.

Its own lean path, apart from stdlib ``logging``: the line is formatted on the
request path and appended to a buffer that is written out at most every 100 ms from
a loop callback, so a request never waits on stderr. Compiled with the request path.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Final, TextIO

FLUSH_S: Final = 0.1
JSON_LINE: Final = (b'{"ts":%.3f,"level":"info","logger":"raftkv.access","method":"%s",'
                    b'"route":"%s","status":%d,"latencyMs":%.3f,"bytes":%d,"requestId":"%s",'
                    b'"client":"%s"}')


class AccessLog:
    """Buffered access-log lines, flushed off the request path."""

    def __init__(self, log_format: str, stream: TextIO | None = None) -> None:
        self.json = log_format == "json"
        self.stream = stream or sys.stderr
        self._lines: list[bytes] = []
        self._scheduled = False
        self.lines_written = 0

    def request(self, method: bytes, route: str, status: int, latency_ms: float, size: int,
                request_id: bytes, client: str) -> None:
        if self.json:
            # Every field is ours or already sanitised (route templates, request ids,
            # IP addresses, HTTP methods): plain formatting is valid JSON, and cheaper.
            # Bytes, because bytes formatting costs a fifth less than str here.
            line = JSON_LINE % (time.time(), method, route.encode(), status, latency_ms,
                                size, request_id, client.encode())
        else:
            line = (f"{time.strftime('%H:%M:%S')} {method.decode('latin-1')} {route or '-'} "
                    f"{status} {latency_ms:.2f}ms {size}B rid={request_id.decode()}").encode()
        self._lines.append(line)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
            except RuntimeError:  # no loop (in-process tests): write at once
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if self._lines:
            lines, self._lines = self._lines, []
            data = b"\n".join(lines) + b"\n"
            binary = getattr(self.stream, "buffer", None)
            if binary is not None:
                self.stream.flush()  # whatever the text layer holds goes first
                binary.write(data)
                binary.flush()
            else:
                self.stream.write(data.decode())
                self.stream.flush()
            self.lines_written += len(lines)
