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
# "000".."999": the fractional digits of a number with three decimals, so a line is
# built from ints and bytes alone (compiled, that formatting is inline C; a %.3f
# float went through the generic formatter and cost half of the line)
_THOUSANDTHS: Final = tuple(b"%03d" % i for i in range(1000))
_time_ns: Final = time.time_ns


class AccessLog:
    """Buffered access-log lines, flushed off the request path."""

    def __init__(self, log_format: str, stream: TextIO | None = None) -> None:
        self.json = log_format == "json"
        self.stream = stream or sys.stderr
        self._lines: list[bytes] = []
        self._scheduled = False
        self.lines_written = 0

    def request(self, method: bytes, route: str, status: int, latency_us: int, size: int,
                request_id: bytes, client: str) -> None:
        if self.json:
            # Every field is ours or already sanitised (route templates, request ids,
            # IP addresses, HTTP methods): plain formatting is valid JSON, and cheaper.
            now_ms = _time_ns() // 1_000_000
            line = (b'{"ts":%d.%s,"level":"info","logger":"raftkv.access","method":"%s",'
                    b'"route":"%s","status":%d,"latencyMs":%d.%s,"bytes":%d,'
                    b'"requestId":"%s","client":"%s"}') % (
                now_ms // 1000, _THOUSANDTHS[now_ms % 1000], method, route.encode(), status,
                latency_us // 1000, _THOUSANDTHS[latency_us % 1000], size, request_id,
                client.encode())
        else:
            line = (f"{time.strftime('%H:%M:%S')} {method.decode('latin-1')} {route or '-'} "
                    f"{status} {latency_us / 1000:.2f}ms {size}B "
                    f"rid={request_id.decode()}").encode()
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
