"""Wiring: build a node's parts from a Config, run them, stop them in reverse.
Nothing imports this module; it imports everything.

Start (``Node.open``): recovery (never serve before it ends) -> replicator ->
        service -> HTTP -> RESP -> UDP, each listener bound before the next part is
        built. Constructors start nothing.
Run (``Node.serve``): every long-lived part's ``run()`` - replicator, service, HTTP,
        RESP - in one TaskGroup (ARCHITECTURE.md rule 6). A part whose ``run`` raises
        (a failed fsync, a dead Raft loop, a bug) stops the node: the error is logged
        once and the process exits 1.
Stop (SIGTERM/SIGINT): stop accepting, drain in-flight requests up to the timeout, a
        leader hands over, the parts' loops end, the log is flushed and fsynced, files
        close - reverse order. A second signal skips the drain (the WAL is still
        fsynced).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from raftkv.clock import Clock, SystemClock
from raftkv.config import Config, ConfigError
from raftkv.core.eviction import Limits
from raftkv.fronts import udp
from raftkv.fronts.http import openapi
from raftkv.fronts.http.access_log import AccessLog
from raftkv.fronts.http.coordination import CoordinationApi
from raftkv.fronts.http.docs import DocsApi
from raftkv.fronts.http.etcd import EtcdGateway
from raftkv.fronts.http.middleware import (
    AccessLogger,
    Audit,
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
from raftkv.fronts.http.watch import WatchApi
from raftkv.fronts.resp.pubsub import PubSub
from raftkv.fronts.resp.server import RespServer
from raftkv.metrics import Metrics
from raftkv.replication.local import LocalReplicator
from raftkv.replication.raft.cluster import open_cluster
from raftkv.replication.replay import recover
from raftkv.service.audit import AuditLog
from raftkv.service.auth import Authenticator, Identify, Principal
from raftkv.service.backup import Schedule
from raftkv.service.coordination import Coordinator
from raftkv.service.ports import Replicator, SnapshotStats
from raftkv.service.ratelimit import TokenBuckets
from raftkv.service.service import KVService, ServiceLimits
from raftkv.storage.fs import FileSystem, OsFileSystem
from raftkv.tls import Tls, certificate_names

log = logging.getLogger("raftkv")
T = TypeVar("T")

EXIT_FAILED = 1


class Runnable(Protocol):
    async def run(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Parts:
    """A node's long-lived parts, built once by ``Node.open``."""

    replicator: Replicator
    service: KVService
    coordinator: Coordinator
    http: HttpServer
    resp: RespServer | None
    udp: asyncio.DatagramTransport | None
    access_log: AccessLog
    tls: Tls
    audit: AuditLog | None
    backups: Schedule | None
    ports: dict[str, int]

    @property
    def runners(self) -> list[Runnable]:
        """The parts with a ``run()``, in start order."""
        return [part for part in (self.replicator, self.service, self.coordinator, self.http,
                                  self.resp, self.tls if self.tls.api else None, self.audit,
                                  self.backups)
                if part is not None]


class Node:
    """One raftkv node: ``open`` builds and binds its parts, ``serve`` runs them until a
    signal (or ``request_stop``) or a part's failure, then closes them."""

    def __init__(self, config: Config, clock: Clock | None = None,
                 fs: FileSystem | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.fs = fs or OsFileSystem()
        self.parts: Parts | None = None
        self._stop = asyncio.Event()
        self._signals = 0
        self._hurry = asyncio.Event()  # set by a second signal

    async def open(self) -> Parts:
        cfg = self.config
        replicator: Replicator | None = None  # (the metrics read it once it exists)
        metrics = Metrics(lambda: _built(replicator).state_machine,
                          lambda: _built(replicator).status(),
                          lambda: self.parts.http.in_flight if self.parts is not None else 0)
        tls = Tls(cfg, metrics.observe_tls)
        audit = _open_outputs(cfg, self.fs)  # (before recovery: a bad path is a bad setting)
        replicator = await self._open_replicator(metrics, tls)
        eviction = Limits(cfg.eviction.policy, cfg.eviction.max_keys,
                          cfg.eviction.max_memory_bytes)
        limits = ServiceLimits(cfg.max_value_bytes, eviction, cfg.txn.max_ops,
                               cfg.txn.max_bytes)
        service = KVService(replicator, self.clock, limits, random.Random())
        coordinator = Coordinator(service)
        access_log = AccessLog(cfg.log_format)
        authenticator = Authenticator(cfg.auth.enabled, cfg.auth.tokens)
        identify = _identify(authenticator) if cfg.tls_client_ca else None
        http = HttpServer(http_app(service, coordinator, self.readiness, cfg, access_log,
                                   authenticator, metrics, lambda: http.in_flight, audit),
                          cfg.http, upgrade=replicator.accept_peer, tls=tls.listen_context,
                          identify=identify)
        ports = {"http": await http.listen(cfg.host, cfg.port)}
        resp = None
        if cfg.resp_port:
            resp = RespServer(service, cfg, authenticator, PubSub(), tls.listen_context,
                              identify, audit)
            ports["resp"] = await resp.listen(cfg.host, cfg.resp_port)
        udp_transport = None
        if cfg.udp_port:
            udp_transport = await udp.listen(cfg.host, cfg.udp_port, service.status)
            ports["udp"] = cfg.udp_port
        parts = self.parts = Parts(replicator, service, coordinator, http, resp, udp_transport,
                                   access_log, tls, audit,
                                   Schedule(service, cfg.backup, self.fs) if cfg.backup.dir
                                   else None, ports)
        log.info("listening", extra={"nodeId": cfg.node_id, "host": cfg.host,
                                     "tls": tls.api, "peerTls": tls.peers, **ports})
        if tls.api and udp_transport is not None:
            log.info("the UDP ping stays plain (no TLS): it answers status only, no data")
        if not tls.api and not cfg.loopback:
            log.warning("SERVING WITHOUT TLS on %s: tokens, AUTH passwords and values cross "
                        "the network in clear text; give --tls-cert and --tls-key", cfg.host)
        return parts

    async def _open_replicator(self, metrics: Metrics, tls: Tls) -> Replicator:
        cfg = self.config
        loop = asyncio.get_running_loop()
        if cfg.cluster:
            return await loop.run_in_executor(
                None, lambda: open_cluster(cfg, self.fs, metrics.observe_wal_batch, tls))
        recovered = await loop.run_in_executor(None, recover, self.fs, cfg.data_dir,
                                               cfg.history)
        for warning in recovered.warnings:
            log.warning(warning)
        log.info("recovered", extra={"dataDir": cfg.data_dir, "lastIndex": recovered.last_index,
                                     "snapshotIndex": recovered.snapshot_index,
                                     "keys": len(recovered.state_machine.keyspace)})

        def observe_snapshot(stats: SnapshotStats) -> None:
            metrics.snapshot_seconds.observe(stats.duration_s)
            metrics.snapshot_bytes.set(stats.size_bytes)

        return LocalReplicator(
            recovered, cfg.fsync, cfg.node_id,
            segment_max_bytes=cfg.storage.segment_max_bytes,
            snapshot_threshold_bytes=cfg.storage.snapshot_threshold_bytes,
            observe_batch=metrics.observe_wal_batch, observe_snapshot=observe_snapshot)

    def readiness(self) -> tuple[bool, str]:
        if self.parts is None:
            return False, "recovery is not finished"
        if self._stop.is_set():
            return False, "shutting down"
        status = self.parts.replicator.status()
        if status.failed:
            return False, "the write-ahead log failed"
        if not status.member:
            return False, "this node is not a member of the cluster (yet)"
        if status.leader_id is None:
            return False, "no leader is known"
        if status.applied_index < status.commit_index:
            return False, "applying committed entries"
        return True, "ready"

    def reload(self) -> None:
        """SIGHUP: reload the TLS files (and reopen the audit log)."""
        if self.parts is not None:
            self.parts.tls.reload()
            if self.parts.audit is not None:
                self.parts.audit.reopen()

    def request_stop(self) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: stopping without draining")
            self._hurry.set()
        self._stop.set()

    async def serve(self) -> int:
        """Run every part until asked to stop (exit status 0) or until one fails
        (logged once; exit status 1). The parts are closed either way."""
        parts = _built(self.parts)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        status = 0
        try:
            async with asyncio.TaskGroup() as tasks:
                running = [tasks.create_task(part.run()) for part in parts.runners]
                await self._stop.wait()
                await self._stop_fronts(parts)
                await parts.replicator.hand_over()
                for task in running:
                    task.cancel()
        except* Exception as failed:
            error = _first_leaf(failed)
            log.critical("stopping: %s", error, exc_info=error)
            status = EXIT_FAILED
        await self._close(parts)
        return status

    async def _stop_fronts(self, parts: Parts) -> None:
        if parts.udp is not None:
            parts.udp.close()
        drained = await self._drain(parts.http, self.config.shutdown_timeout_s)
        log.info("drained" if drained else "drain timed out; closing the rest")
        if parts.resp is not None:
            await parts.resp.close()

    async def _close(self, parts: Parts) -> None:
        if not self._stop.is_set():  # a part failed: nothing was drained
            self._stop.set()
            self._hurry.set()
            await self._stop_fronts(parts)
        await parts.replicator.close()
        parts.access_log.flush()
        if parts.audit is not None:
            parts.audit.close()
        log.info("stopped")

    async def _drain(self, http: HttpServer, timeout_s: float) -> bool:
        drain = asyncio.ensure_future(http.drain(timeout_s))
        second = asyncio.ensure_future(self._hurry.wait())
        done, _ = await asyncio.wait({drain, second}, return_when=asyncio.FIRST_COMPLETED)
        second.cancel()
        if drain in done:
            return drain.result()
        drain.cancel()
        for conn in list(http.connections):
            conn.abort()
        return False


def _first_leaf(error: BaseException) -> BaseException:
    """The error itself out of the TaskGroups (nested: parts run TaskGroups too)."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _open_outputs(cfg: Config, fs: FileSystem) -> AuditLog | None:
    """What the node writes outside its data directory: the backup directory (made
    now) and the audit log (opened). ConfigError names the setting that cannot be."""
    if cfg.backup.dir:
        try:
            fs.makedirs(cfg.backup.dir)
        except OSError as exc:
            raise ConfigError(f"invalid setting backup.dir: cannot make {cfg.backup.dir}: "
                              f"{exc.strerror}") from None
    if not cfg.audit.path:
        return None
    try:
        return AuditLog(cfg.audit.path, cfg.audit.fsync)
    except OSError as exc:
        raise ConfigError(f"invalid setting audit.path: cannot open {cfg.audit.path}: "
                          f"{exc.strerror}") from None


def _identify(authenticator: Authenticator) -> Identify:
    """Who a TLS connection's verified client certificate names in ``[auth]``."""
    def identify(transport: asyncio.BaseTransport) -> Principal | None:
        return authenticator.for_certificate(certificate_names(
            transport.get_extra_info("peercert")))
    return identify


def _built(part: T | None) -> T:
    assert part is not None, "used before Node.open built it"
    return part


def http_app(service: KVService, coordinator: Coordinator,
             readiness: Callable[[], tuple[bool, str]], cfg: Config,
             access_log: AccessLog, authenticator: Authenticator, metrics: Metrics,
             in_flight: Callable[[], int], audit: AuditLog | None = None) -> Pipeline:
    """The HTTP front: the middleware chain, in order, around the router."""
    router = Router()
    HttpApi(service, readiness, openapi.document_bytes, metrics.exposition).register(router)
    router.add("GET", "/v1/watch", WatchApi(service, cfg.http.watch_buffer_bytes).handle)
    CoordinationApi(coordinator).register(router)
    DocsApi().register(router)
    EtcdGateway(service, coordinator, cfg.http.watch_buffer_bytes).register(router)
    rl = cfg.rate_limit
    layers: list[Middleware] = [RequestId()]
    if cfg.access_log or cfg.request_metrics:
        layers.append(AccessLogger(access_log if cfg.access_log else None,
                                   metrics.requests if cfg.request_metrics else None))
    if audit is not None:
        layers.append(Audit(audit))
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


async def run(config: Config) -> int:
    """Serve ``config``'s node until it is stopped; the process's exit status."""
    tune_runtime()
    node = Node(config)
    await node.open()
    return await node.serve()
