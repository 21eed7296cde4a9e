"""Logging: JSON lines in production, readable lines on a TTY.

Application events go through stdlib ``logging`` with one of two formatters. The
access log (one line per request, never sampled) has its own lean path: the line
is formatted on the request path and appended to a buffer that is written out
at most every 100 ms from a loop callback, so a request never waits on stderr.
No token or secret is ever passed to a logger.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import sys
import time
from typing import Any, TextIO

import orjson

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update((k, v) for k, v in vars(record).items() if k not in _RESERVED)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _RESERVED)
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line}  {extra}" if extra else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(log_format: str, level: str, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class AccessLog:
    """Buffered access-log lines, flushed off the request path."""

    FLUSH_S = 0.1
    JSON_LINE = (b'{"ts":%.3f,"level":"info","logger":"raftkv.access","method":"%s",'
                 b'"route":"%s","status":%d,"latencyMs":%.3f,"bytes":%d,"requestId":"%s",'
                 b'"client":"%s"}')

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
            line = self.JSON_LINE % (time.time(), method, route.encode(), status, latency_ms,
                                     size, request_id, client.encode())
        else:
            line = (f"{time.strftime('%H:%M:%S')} {method.decode('latin-1')} {route or '-'} "
                    f"{status} {latency_ms:.2f}ms {size}B rid={request_id.decode()}").encode()
        self._lines.append(line)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_S, self.flush)
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
