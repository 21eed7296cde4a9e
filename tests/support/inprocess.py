"""The HTTP front in-process: the real middleware chain and router over a node whose
WAL lives in a CrashFS, driven without sockets (fast, and every error path reachable)."""

from __future__ import annotations

import io
from typing import Any

import orjson

from raftkv.app import http_app
from raftkv.clock import ManualClock
from raftkv.config import load
from raftkv.deferred import Deferred
from raftkv.fronts.http.access_log import AccessLog
from raftkv.fronts.http.messages import Request, Response
from raftkv.metrics import Metrics
from raftkv.replication.local import LocalReplicator
from raftkv.replication.replay import recover
from raftkv.service.auth import Authenticator
from raftkv.service.coordination import Coordinator
from raftkv.service.service import KVService, ServiceLimits
from raftkv.storage.wal import FsyncPolicy
from tests.support.crashfs import CrashFS


class InProcessApi:
    def __init__(self, fsync: FsyncPolicy = FsyncPolicy.ALWAYS) -> None:
        self.fs = CrashFS()
        self.clock = ManualClock()
        self.log = io.StringIO()
        config = load({}, env={})
        recovered = recover(self.fs, "/data")
        self.replicator = LocalReplicator(recovered, fsync)
        self.service = KVService(self.replicator, self.clock, ServiceLimits())
        metrics = Metrics(lambda: recovered.state_machine, self.replicator.status, lambda: 0)
        self.app = http_app(self.service, Coordinator(self.service), lambda: (True, "ready"), config,
                            AccessLog("json", self.log), Authenticator(False, ()), metrics,
                            lambda: 0)

    async def call(self, method: str, path: str, body: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any, dict[bytes, bytes]]:
        raw_path, _, query = path.encode().partition(b"?")
        data = body if isinstance(body, bytes) else orjson.dumps(body) if body is not None else b""
        request = Request(method.encode(), raw_path, query,
                          {k.lower().encode(): v.encode() for k, v in (headers or {}).items()},
                          data, "127.0.0.1")
        reply = self.app.handle(request)
        response: Response = await reply if isinstance(reply, Deferred) else reply
        content = orjson.loads(response.body) if response.body and \
            response.content_type == b"application/json" else response.body
        return response.status, content, dict(response.headers)

    async def close(self) -> None:
        await self.replicator.close()
