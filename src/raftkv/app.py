"""Wiring: build a node's parts from a Config, start them in order, stop them in
reverse. Nothing imports this module; it imports everything.

Start:  recovery (never serve before it ends) -> replicator -> service -> HTTP ->
        RESP -> UDP -> background tasks (one TaskGroup, so a crash surfaces).
Stop (SIGTERM/SIGINT): stop accepting, drain in-flight requests up to the timeout,
        stop background tasks, flush and fsync the WAL, close - reverse order.
        A second signal skips the drain (the WAL is still fsynced).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from raftkv.clock import Clock, SystemClock
from raftkv.config import Config
from raftkv.core.eviction import Limits
from raftkv.fronts import udp
from raftkv.fronts.http import openapi
from raftkv.fronts.http.access_log import AccessLog
from raftkv.fronts.http.middleware import (
    AccessLogger,
    Auth,
    Cors,
    Middleware,
    Pipeline,
    RateLimit,
    Recovery,
    RequestId,
    SecurityHeaders,
)
from raftkv.fronts.http.router import Router
from raftkv.fronts.http.routes import HttpApi
from raftkv.fronts.http.server import HttpServer
from raftkv.fronts.resp.pubsub import PubSub
from raftkv.fronts.resp.server import RespServer
from raftkv.metrics import Metrics
from raftkv.replication.local import LocalReplicator
from raftkv.replication.raft.cluster import open_cluster, start_cluster
from raftkv.replication.raft.node import RaftReplicator
from raftkv.service.auth import Authenticator
from raftkv.service.ports import ReplicaStatus, SnapshotStats
from raftkv.service.ratelimit import TokenBuckets
from raftkv.service.service import KVService, ServiceLimits
from raftkv.storage.fs import FileSystem, OsFileSystem
from raftkv.storage.recovery import recover

log = logging.getLogger("raftkv")


@dataclass
class Node:
    config: Config
    clock: Clock = field(default_factory=SystemClock)
    fs: FileSystem = field(default_factory=OsFileSystem)
    replicator: LocalReplicator | RaftReplicator | None = None
    service: KVService | None = None
    http: HttpServer | None = None
    resp: RespServer | None = None
    udp: asyncio.DatagramTransport | None = None
    access_log: AccessLog | None = None
    authenticator: Authenticator | None = None
    metrics: Metrics | None = None
    ports: dict[str, int] = field(default_factory=dict)
    recovered: bool = False
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _signals: int = 0
    _hurry: asyncio.Event = field(default_factory=asyncio.Event)  # set by a second signal

    async def start(self) -> None:
        cfg = self.config
        self.metrics = Metrics(lambda: self._replicator().state_machine, self._status,
                               self._in_flight)
        if cfg.cluster:
            await self._open_cluster()
        else:
            await self._open_single()
        replicator = self._replicator()
        self.recovered = True
        eviction = Limits(cfg.eviction.policy, cfg.eviction.max_keys,
                          cfg.eviction.max_memory_bytes)
        self.service = KVService(replicator, self.clock,
                                 ServiceLimits(cfg.max_value_bytes, eviction), random.Random(),
                                 replicator if isinstance(replicator, RaftReplicator) else None)
        self.access_log = AccessLog(cfg.log_format)
        self.authenticator = Authenticator(cfg.auth.enabled, cfg.auth.tokens)
        chain = http_app(self.service, self.readiness, cfg, self.access_log, self.authenticator,
                         self.metrics, self._in_flight)
        self.http = HttpServer(chain, cfg.http)
        if isinstance(replicator, RaftReplicator):
            assert replicator.network is not None
            self.http.upgrade = replicator.network.accept
        self.ports["http"] = await self.http.listen(cfg.host, cfg.port)
        if isinstance(replicator, RaftReplicator):
            start_cluster(replicator)  # links go out once our own port answers them
        if cfg.resp_port:
            self.resp = RespServer(self.service, cfg, self.authenticator, PubSub())
            self.ports["resp"] = await self.resp.listen(cfg.host, cfg.resp_port)
        if cfg.udp_port:
            self.udp = await udp.listen(cfg.host, cfg.udp_port, self.service.status)
            self.ports["udp"] = cfg.udp_port
        log.info("listening", extra={"nodeId": cfg.node_id, "host": cfg.host, **self.ports})

    async def _open_single(self) -> None:
        cfg = self.config
        assert self.metrics is not None
        loop = asyncio.get_running_loop()
        recovered = await loop.run_in_executor(None, recover, self.fs, cfg.data_dir)
        for warning in recovered.warnings:
            log.warning(warning)
        log.info("recovered", extra={"dataDir": cfg.data_dir, "lastIndex": recovered.last_index,
                                     "snapshotIndex": recovered.snapshot_index,
                                     "keys": len(recovered.state_machine.keyspace)})
        self.replicator = LocalReplicator(
            self.fs, cfg.data_dir, recovered, cfg.fsync, cfg.node_id,
            segment_max_bytes=cfg.storage.segment_max_bytes,
            snapshot_threshold_bytes=cfg.storage.snapshot_threshold_bytes,
            observe_batch=self.metrics.observe_wal_batch,
            observe_snapshot=self._observe_snapshot)

    async def _open_cluster(self) -> None:
        assert self.metrics is not None
        observe = self.metrics.observe_wal_batch
        self.replicator = await asyncio.get_running_loop().run_in_executor(
            None, open_cluster, self.config, self.fs, observe)

    def _replicator(self) -> LocalReplicator | RaftReplicator:
        assert self.replicator is not None
        return self.replicator

    def _status(self) -> ReplicaStatus:
        return self._replicator().status()

    def _observe_snapshot(self, stats: SnapshotStats) -> None:
        assert self.metrics is not None
        self.metrics.snapshot_seconds.observe(stats.duration_s)
        self.metrics.snapshot_bytes.set(stats.size_bytes)

    def _in_flight(self) -> int:
        return self.http.in_flight if self.http is not None else 0

    def readiness(self) -> tuple[bool, str]:
        if not self.recovered or self.replicator is None:
            return False, "recovery is not finished"
        if self._stop.is_set():
            return False, "shutting down"
        status = self.replicator.status()
        if status.failed:
            return False, "the write-ahead log failed"
        if not status.member:
            return False, "this node is not a member of the cluster (yet)"
        if status.leader_id is None:
            return False, "no leader is known"
        if status.applied_index < status.commit_index:
            return False, "applying committed entries"
        return True, "ready"

    def request_stop(self) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: stopping without draining")
            self._hurry.set()
        self._stop.set()

    async def serve_until_stopped(self) -> None:
        assert self.service is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        async with asyncio.TaskGroup() as tasks:
            expiry = tasks.create_task(self.service.run_expiry_cycle())
            await self._stop.wait()
            await self.stop(background=[expiry])

    async def stop(self, background: list[asyncio.Task[None]] | None = None) -> None:
        cfg = self.config
        if self.udp is not None:
            self.udp.close()
        if self.http is not None:
            drained = await self._drain(cfg.shutdown_timeout_s)
            log.info("drained" if drained else "drain timed out; closing the rest")
        if self.resp is not None:
            await self.resp.close()
        for task in background or []:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.replicator is not None:
            await self.replicator.close()
        if self.access_log is not None:
            self.access_log.flush()
        log.info("stopped")

    async def _drain(self, timeout_s: float) -> bool:
        assert self.http is not None
        drain = asyncio.ensure_future(self.http.drain(timeout_s))
        second = asyncio.ensure_future(self._hurry.wait())
        done, _ = await asyncio.wait({drain, second}, return_when=asyncio.FIRST_COMPLETED)
        second.cancel()
        if drain in done:
            return drain.result()
        drain.cancel()
        for conn in list(self.http.connections):
            conn.abort()
        return False



def http_app(service: KVService, readiness: Callable[[], tuple[bool, str]], cfg: Config,
             access_log: AccessLog, authenticator: Authenticator, metrics: Metrics,
             in_flight: Callable[[], int]) -> Pipeline:
    """The HTTP front: the middleware chain, in order, around the router."""
    router = Router()
    HttpApi(service, readiness, openapi.document_bytes, metrics.exposition).register(router)
    rl = cfg.rate_limit
    layers: list[Middleware] = [RequestId()]
    if cfg.access_log or cfg.request_metrics:
        layers.append(AccessLogger(access_log if cfg.access_log else None,
                                   metrics.requests if cfg.request_metrics else None))
    layers += [SecurityHeaders(), Recovery()]
    if cfg.cors_origins:
        layers.append(Cors(cfg.cors_origins))
    if rl.enabled:
        layers.append(RateLimit(TokenBuckets(rl.per_client_rps, rl.per_client_burst,
                                             time.monotonic),
                                TokenBuckets(rl.per_token_rps, rl.per_token_burst,
                                             time.monotonic),
                                in_flight, rl.max_in_flight))
    layers.append(Auth(authenticator, TokenBuckets(rl.failed_auth_per_minute / 60,
                                                   rl.failed_auth_per_minute, time.monotonic)))
    return Pipeline(layers, router)


# The cyclic collector runs after this many new container objects (CPython: 700).
# A request's objects are freed by reference counting, so a collection mostly walks
# the objects of requests still in flight; running it less often saves ~6% of an
# HTTP PUT's instructions (``make instructions``) and leaves cycles alive a bit longer.
GC_YOUNG_THRESHOLD = 10_000


def tune_runtime() -> None:
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


async def run(config: Config) -> None:
    tune_runtime()
    node = Node(config)
    await node.start()
    await node.serve_until_stopped()
