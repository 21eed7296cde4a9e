"""The audit log: one JSON line per write, per admin action and per refused attempt,
from every front, in its own file (``[audit] path``; off without one).

A line says who did what and how it ended - never a value, a token or a password::

    {"ts":"2026-12-07T10:00:00.123456+00:00","front":"http","requestId":"9f3c-12",
     "principal":"deploy","client":"10.0.0.7","operation":"PUT /v1/keys/{key...}",
     "keys":["app/config"],"outcome":"ok","status":201}

``outcome`` is ``ok``, ``denied`` (authentication or permission refused) or ``failed``
(any other error; ``status`` has the HTTP status or the Redis error's first word).

Lines are gathered and written once per turn of the event loop; ``fsync`` follows the
policy: ``always`` syncs each of those writes, ``everysec`` once a second (``run``),
``no`` leaves it to the OS. ``reopen`` (SIGHUP) starts writing to whatever file is at
the path then, for log rotation (rename the file, send SIGHUP).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
from collections.abc import Sequence

import orjson

from raftkv.storage.wal import FsyncPolicy

log = logging.getLogger("raftkv.audit")

OK, DENIED, FAILED = "ok", "denied", "failed"


class AuditLog:
    def __init__(self, path: str, fsync: FsyncPolicy) -> None:
        self.path = path
        self.fsync = fsync
        self._fd = self._open()
        self._lines: list[bytes] = []
        self._unsynced = False

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def record(self, front: str, request_id: str, principal: str, client: str,
               operation: str, keys: Sequence[str], outcome: str, status: int | str) -> None:
        if not self._lines:
            asyncio.get_running_loop().call_soon(self.flush)
        self._lines.append(orjson.dumps({
            "ts": datetime.datetime.now(datetime.UTC).isoformat(), "front": front,
            "requestId": request_id, "principal": principal, "client": client,
            "operation": operation, "keys": list(keys), "outcome": outcome,
            "status": status}) + b"\n")

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        if not lines:
            return
        try:
            os.write(self._fd, b"".join(lines))
            if self.fsync is FsyncPolicy.ALWAYS:
                os.fsync(self._fd)
            else:
                self._unsynced = True
        except OSError as exc:  # the data path goes on; the gap is said out loud
            log.error("audit lines lost: cannot write %s: %s", self.path, exc,
                      extra={"lines": len(lines)})

    async def run(self) -> None:
        """Under ``everysec``: fsync once a second what was written, until cancelled."""
        while True:
            await asyncio.sleep(1.0)
            if self._unsynced and self.fsync is FsyncPolicy.EVERYSEC:
                self._unsynced = False
                try:
                    os.fsync(self._fd)
                except OSError as exc:  # the data path goes on; the gap is said out loud
                    log.error("audit log not synced: %s: %s", self.path, exc)

    def reopen(self) -> None:
        self.flush()
        try:
            fd = self._open()
        except OSError as exc:
            log.error("audit log not reopened, still writing the old file: %s", exc)
            return
        os.close(self._fd)
        self._fd = fd
        log.info("audit log reopened", extra={"path": self.path})

    def close(self) -> None:
        self.flush()
        if self.fsync is not FsyncPolicy.NO:
            os.fsync(self._fd)
        os.close(self._fd)
