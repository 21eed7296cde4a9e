"""The server family of RESP commands: INFO, CONFIG, CLIENT, DBSIZE, TIME, FLUSHDB and
FLUSHALL, answered as Redis 7.0 answers them (field names, order, error texts), about
this node.

``redis_version`` is the Redis release whose behaviour raftkv follows and is tested
against, so clients that parse it (to pick commands) see a plain ``7.x.y``; raftkv's
own version is ``raftkv_version``. CONFIG SET changes, at run time and on this node
only, the parameters that can change without a restart (``SETTABLE``); the rest are
refused with Redis's "can't set immutable config".
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from raftkv import __version__
from raftkv.core.eviction import Limits, Policy
from raftkv.fronts.resp import protocol as p
from raftkv.fronts.resp.commands import (
    TABLE,
    CommandError,
    Reply,
    Spec,
    client_name,
    command,
    later,
    to_int,
)
from raftkv.fronts.resp.glob import compile_glob
from raftkv.fronts.resp.pubsub import KeyspaceEvents

if TYPE_CHECKING:
    from raftkv.fronts.resp.server import Connection, RespServer

REDIS_VERSION: Final = b"7.0.15"
RUN_ID: Final = os.urandom(20).hex()  # Redis's run_id: new at every start
INFO_DEFAULT: Final = ("server", "clients", "memory", "persistence", "stats", "replication",
                       "cpu", "modules", "errorstats", "cluster", "keyspace")
INFO_ALL: Final = (*INFO_DEFAULT[:8], "commandstats", *INFO_DEFAULT[8:])


# --- INFO -------------------------------------------------------------------------------

@command("info", -1, "")
def info(conn: Connection, args: list[bytes]) -> Reply:
    wanted = {a.lower().decode(errors="replace") for a in args[1:]} or {"default"}
    if wanted & {"all", "everything"}:
        names: tuple[str, ...] = INFO_ALL
    else:
        names = tuple(n for n in INFO_ALL if n in wanted or
                      ("default" in wanted and n in INFO_DEFAULT))
    sections = []
    for name in names:
        fields = _INFO_SECTIONS[name](conn.server)
        sections.append(f"# {name.capitalize()}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in fields))
    return p.bulk("\r\n".join(sections).encode())


Fields = list[tuple[str, object]]


def _server_info(server: RespServer) -> Fields:
    status = server.service.status()
    uptime_s = int(time.monotonic() - server.started)
    return [
        ("redis_version", REDIS_VERSION.decode()), ("redis_git_sha1", "00000000"),
        ("redis_git_dirty", 0), ("redis_build_id", "0"), ("redis_mode", "standalone"),
        ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("arch_bits", 64 if platform.architecture()[0] == "64bit" else 32),
        ("multiplexing_api", "epoll"), ("gcc_version", "0.0.0"),
        ("process_id", os.getpid()), ("process_supervised", "no"), ("run_id", RUN_ID),
        ("tcp_port", server.port), ("server_time_usec", time.time_ns() // 1000),
        ("uptime_in_seconds", uptime_s), ("uptime_in_days", uptime_s // 86400),
        ("hz", 10), ("configured_hz", 10),
        ("executable", os.path.abspath(sys.argv[0]) if sys.argv else ""),
        ("config_file", server.config.config_file or ""),
        ("raftkv_version", __version__), ("raftkv_node_id", status.node_id),
    ]


def _clients_info(server: RespServer) -> Fields:
    connections = server.connections
    return [
        ("connected_clients", len(connections)), ("cluster_connections", 0),
        ("maxclients", server.max_clients), ("client_recent_max_input_buffer", 0),
        ("client_recent_max_output_buffer", 0), ("blocked_clients", 0),
        ("tracking_clients", 0), ("clients_in_timeout_table", 0),
        ("pubsub_clients", sum(1 for c in connections if c.subscriptions or c.patterns)),
    ]


def _memory_info(server: RespServer) -> Fields:
    used = server.service.stats().memory_bytes
    limits = server.service.limits.eviction
    return [
        ("used_memory", used), ("used_memory_human", _human(used)),
        ("used_memory_rss", _rss_bytes()), ("maxmemory", limits.max_memory_bytes),
        ("maxmemory_human", _human(limits.max_memory_bytes)),
        ("maxmemory_policy", str(limits.policy)),
    ]  # (used_memory is eviction's estimate: payload plus a fixed overhead per key)


def _persistence_info(server: RespServer) -> Fields:
    stats = server.service.stats()
    return [
        ("loading", 0), ("async_loading", 0), ("rdb_changes_since_last_save", 0),
        ("rdb_bgsave_in_progress", 0), ("rdb_last_bgsave_status", "ok"),
        ("aof_enabled", 1), ("aof_rewrite_in_progress", 0), ("aof_last_write_status", "ok"),
        ("raftkv_fsync", str(server.config.fsync)), ("raftkv_applied_index", stats.applied_index),
    ]


def _stats_info(server: RespServer) -> Fields:
    stats, keyspace = server.stats, server.service.stats()
    return [
        ("total_connections_received", stats.connections_received),
        ("total_commands_processed", stats.commands),
        ("rejected_connections", stats.rejected_connections),
        ("expired_keys", keyspace.expired_total), ("evicted_keys", keyspace.evicted_total),
        ("keyspace_hits", stats.keyspace_hits), ("keyspace_misses", stats.keyspace_misses),
        ("pubsub_channels", len(server.pubsub.channels)),
        ("pubsub_patterns", len(server.pubsub.patterns)),
        ("total_error_replies", sum(s.stats.failed + s.stats.rejected for s in _specs())),
    ]


def _replication_info(server: RespServer) -> Fields:
    status = server.service.status()
    return [
        ("role", "master" if status.role == "leader" else "slave"), ("connected_slaves", 0),
        ("master_repl_offset", status.commit_index),
        ("raftkv_role", status.role), ("raftkv_leader_id", status.leader_id or ""),
        ("raftkv_term", status.term), ("raftkv_commit_index", status.commit_index),
    ]


def _cpu_info(server: RespServer) -> Fields:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return [("used_cpu_sys", f"{me.ru_stime:.6f}"), ("used_cpu_user", f"{me.ru_utime:.6f}"),
            ("used_cpu_sys_children", f"{children.ru_stime:.6f}"),
            ("used_cpu_user_children", f"{children.ru_utime:.6f}")]


def _commandstats_info(server: RespServer) -> Fields:
    out: Fields = []
    for spec in _specs():
        s = spec.stats
        if s.calls or s.rejected or s.failed:
            usec = s.ns // 1000
            per_call = usec / s.calls if s.calls else 0.0
            out.append((f"cmdstat_{spec.name}", f"calls={s.calls},usec={usec},usec_per_call="
                        f"{per_call:.2f},rejected_calls={s.rejected},failed_calls={s.failed}"))
    return out


def _keyspace_info(server: RespServer) -> Fields:
    stats = server.service.stats()
    if not stats.keys:
        return []
    return [("db0", f"keys={stats.keys},expires={stats.volatile_keys},avg_ttl=0")]


def _specs() -> list[Spec]:
    return list(TABLE.values())


_INFO_SECTIONS: Final[dict[str, Callable[[RespServer], Fields]]] = {
    "server": _server_info, "clients": _clients_info, "memory": _memory_info,
    "persistence": _persistence_info, "stats": _stats_info, "replication": _replication_info,
    "cpu": _cpu_info, "modules": lambda server: [], "commandstats": _commandstats_info,
    "errorstats": lambda server: [], "cluster": lambda server: [("cluster_enabled", 0)],
    "keyspace": _keyspace_info,
}


def _human(n: int) -> str:
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n}B"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


# --- CONFIG -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Parameter:
    """One CONFIG parameter: how to read it and, when it can change at run time, how to
    parse and apply a new value (``parse`` raises ValueError with Redis's reason)."""

    get: Callable[[RespServer], bytes]
    parse: Callable[[bytes], object] | None = None
    apply: Callable[[RespServer, object], None] | None = None


def _memory_value(raw: bytes) -> int:
    """Redis's memtoull: bytes, or k/kb/m/mb/g/gb (k = 1000, kb = 1024)."""
    text = raw.decode(errors="replace").lower()
    digits = text.rstrip("kmgb")
    units = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 10**6, "mb": 1 << 20, "g": 10**9,
             "gb": 1 << 30}
    unit = text[len(digits):]
    if not digits.isdigit() or unit not in units:
        raise ValueError("argument must be a memory value")
    return int(digits) * units[unit]


def _integer(raw: bytes) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("argument couldn't be parsed into an integer") from None


def _bounded(lo: int, hi: int, parse: Callable[[bytes], int] = _integer
             ) -> Callable[[bytes], int]:
    def check(raw: bytes) -> int:
        value = parse(raw)
        if not lo <= value <= hi:
            raise ValueError(f"argument must be between {lo} and {hi} inclusive")
        return value
    return check


def _policy(raw: bytes) -> Policy:
    names = [policy.value for policy in Policy]
    try:
        return Policy(raw.decode(errors="replace").lower())
    except ValueError:
        raise ValueError(f"argument(s) must be one of the following: {', '.join(names)}") \
            from None


def _set_eviction(server: RespServer, **change: object) -> None:
    current = server.service.limits.eviction
    fields = {"policy": current.policy, "max_keys": current.max_keys,
              "max_memory_bytes": current.max_memory_bytes,
              "sample_size": current.sample_size, **change}
    server.service.configure_eviction(Limits(**fields))  # type: ignore[arg-type]


def _set_query_buffer_limit(server: RespServer, value: object) -> None:
    assert isinstance(value, int)
    server.query_buffer_limit_bytes = value
    for conn in server.connections:
        conn.reader.max_query_bytes = value


def _fixed(value: bytes) -> Parameter:
    return Parameter(lambda server: value)


PARAMETERS: Final[dict[bytes, Parameter]] = {
    b"appendonly": _fixed(b"yes"),  # every write goes through the log
    b"appendfsync": Parameter(lambda s: str(s.config.fsync).encode()),
    b"bind": Parameter(lambda s: s.config.host.encode()),
    b"client-query-buffer-limit": Parameter(
        lambda s: b"%d" % s.query_buffer_limit_bytes, _bounded(1 << 20, 2**63 - 1, _memory_value),
        _set_query_buffer_limit),
    b"cluster-enabled": _fixed(b"no"),
    b"daemonize": _fixed(b"no"),
    b"databases": _fixed(b"1"),
    b"dir": Parameter(lambda s: os.path.abspath(s.config.data_dir).encode()),
    b"hz": _fixed(b"10"),
    b"io-threads": _fixed(b"1"),
    b"lfu-decay-time": _fixed(b"1"),
    b"lfu-log-factor": _fixed(b"10"),
    b"logfile": _fixed(b""),  # logs go to standard error
    b"loglevel": Parameter(lambda s: {"debug": b"debug", "info": b"notice",
                                      "warning": b"warning", "error": b"warning"}
                           .get(s.config.log_level, b"notice")),
    b"maxclients": Parameter(lambda s: b"%d" % s.max_clients, _bounded(1, 4294967295),
                             lambda s, v: setattr(s, "max_clients", v)),
    b"maxmemory": Parameter(lambda s: b"%d" % s.service.limits.eviction.max_memory_bytes,
                            _bounded(0, 2**63 - 1, _memory_value),
                            lambda s, v: _set_eviction(s, max_memory_bytes=v)),
    b"maxmemory-policy": Parameter(lambda s: str(s.service.limits.eviction.policy).encode(),
                                   _policy, lambda s, v: _set_eviction(s, policy=v)),
    b"maxmemory-samples": Parameter(lambda s: b"%d" % s.service.limits.eviction.sample_size,
                                    _bounded(1, 64),
                                    lambda s, v: _set_eviction(s, sample_size=v)),
    b"notify-keyspace-events": Parameter(lambda s: s.events.flags.encode(),
                                         lambda raw: KeyspaceEvents.check(
                                             raw.decode(errors="replace")),
                                         lambda s, v: s.events.configure(str(v))),
    b"port": Parameter(lambda s: b"%d" % s.port),
    b"protected-mode": _fixed(b"yes"),
    b"proto-max-bulk-len": Parameter(lambda s: b"%d" % s.max_bulk_bytes),
    b"replica-read-only": _fixed(b"yes"),
    b"requirepass": _fixed(b""),  # tokens are hashed in [auth]; never shown
    b"save": _fixed(b""),
    b"supervised": _fixed(b"no"),  # snapshots follow the log's size, not save points
    b"tcp-keepalive": _fixed(b"0"),
    b"timeout": Parameter(lambda s: b"%d" % s.idle_timeout_s, _bounded(0, 2147483647),
                          lambda s, v: setattr(s, "idle_timeout_s", float(v))),  # type: ignore[arg-type]
}


@command("config", -2, "admin")
def config(conn: Connection, args: list[bytes]) -> Reply:
    sub = args[1].upper()
    server = conn.server
    if sub == b"GET" and len(args) > 2:
        patterns = [compile_glob(a.lower()) for a in args[2:]]
        return conn.enc.map([(p.bulk(name), p.bulk(parameter.get(server)))
                             for name, parameter in PARAMETERS.items()
                             if any(pattern.match(name) for pattern in patterns)])
    if sub == b"SET" and len(args) > 3 and len(args) % 2 == 0:
        return _config_set(server, args[2::2], args[3::2])
    if sub == b"RESETSTAT" and len(args) == 2:
        server.reset_stats()
        for spec in TABLE.values():
            spec.stats.reset()
        return p.OK
    if sub in (b"GET", b"SET", b"RESETSTAT"):
        raise CommandError(f"ERR wrong number of arguments for 'config|{sub.lower().decode()}' "
                           f"command")
    raise CommandError(f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. Try "
                       f"CONFIG HELP.")


def _config_set(server: RespServer, names: list[bytes], raws: list[bytes]) -> bytes:
    """Every pair is checked before any is applied, as Redis 7 does."""
    changes = []
    seen: set[bytes] = set()
    for raw_name, raw in zip(names, raws, strict=True):
        name = raw_name.lower()
        parameter = PARAMETERS.get(name)
        shown = raw_name.decode(errors="replace")
        if parameter is None:
            raise CommandError(f"ERR Unknown option or number of arguments for CONFIG SET - "
                               f"'{shown}'")
        if name in seen:
            raise CommandError(f"ERR CONFIG SET failed (possibly related to argument '{shown}') "
                               f"- duplicate parameter")
        seen.add(name)
        if parameter.parse is None or parameter.apply is None:
            raise CommandError(f"ERR CONFIG SET failed (possibly related to argument '{shown}') "
                               f"- can't set immutable config")
        try:
            changes.append((parameter.apply, parameter.parse(raw)))
        except ValueError as exc:
            raise CommandError(f"ERR CONFIG SET failed (possibly related to argument "
                               f"'{shown}') - {exc}") from None
    for apply, value in changes:
        apply(server, value)
    return p.OK


# --- CLIENT -----------------------------------------------------------------------------

CLIENT_TYPES: Final = {b"normal", b"master", b"slave", b"replica", b"pubsub"}


@command("client", -2, "")
def client(conn: Connection, args: list[bytes]) -> Reply:
    sub = args[1].upper()
    if sub == b"ID" and len(args) == 2:
        return p.integer(conn.id)
    if sub == b"GETNAME" and len(args) == 2:
        return conn.enc.bulk(conn.name)
    if sub == b"SETNAME" and len(args) == 3:
        conn.name = client_name(args[2])
        return p.OK
    if sub == b"SETINFO" and len(args) == 4:
        return p.OK
    if sub == b"INFO" and len(args) == 2:
        return p.bulk(conn.describe() + b"\n")
    if sub == b"LIST":
        return p.bulk(b"".join(c.describe() + b"\n" for c in _client_list(conn, args)))
    if sub == b"KILL" and len(args) >= 3:
        return _client_kill(conn, args)
    raise CommandError(f"ERR unknown subcommand or wrong number of arguments for "
                       f"'{args[1].decode(errors='replace')}'. Try CLIENT HELP.")


def _client_list(conn: Connection, args: list[bytes]) -> list[Connection]:
    everyone = sorted(conn.server.connections, key=lambda c: c.id)
    if len(args) == 2:
        return everyone
    option = args[2].upper()
    if option == b"TYPE" and len(args) == 4:
        kind = args[3].lower()
        if kind not in CLIENT_TYPES:
            raise CommandError(f"ERR Unknown client type '{args[3].decode(errors='replace')}'")
        pubsub = kind == b"pubsub"
        if kind not in (b"normal", b"pubsub"):
            return []  # raftkv has no replication clients: its replicas speak Raft
        return [c for c in everyone if bool(c.subscriptions or c.patterns) == pubsub]
    if option == b"ID" and len(args) > 3:
        by_id = {c.id: c for c in everyone}
        wanted = []
        for raw in args[3:]:
            try:
                wanted.append(to_int(raw))
            except CommandError:
                raise CommandError("ERR Invalid client ID") from None
        return [by_id[i] for i in wanted if i in by_id]
    raise CommandError("ERR syntax error")


def _client_kill(conn: Connection, args: list[bytes]) -> bytes:
    """CLIENT KILL addr (the old form: OK or an error) or KILL ID id / ADDR addr (a count)."""
    everyone = list(conn.server.connections)
    if len(args) == 3:
        victims = [c for c in everyone if c.addr.encode() == args[2]]
        if not victims:
            raise CommandError("ERR No such client")
        victims[0].close()
        return p.OK
    if len(args) % 2:
        raise CommandError("ERR syntax error")
    for option, value in zip(args[2::2], args[3::2], strict=True):
        option = option.upper()
        if option == b"ID":
            try:
                wanted = to_int(value)
            except CommandError:
                raise CommandError("ERR client-id should be greater than 0") from None
            everyone = [c for c in everyone if c.id == wanted]
        elif option == b"ADDR":
            everyone = [c for c in everyone if c.addr.encode() == value]
        elif option == b"SKIPME":
            if value.lower() not in (b"yes", b"no"):
                raise CommandError("ERR syntax error")
            if value.lower() == b"yes":
                everyone = [c for c in everyone if c is not conn]
        else:
            raise CommandError("ERR syntax error")
    for victim in everyone:
        if victim is conn:
            conn.close_after_reply = True  # after this reply, as Redis does
        else:
            victim.close()
    return p.integer(len(everyone))


# --- keyspace-wide commands ----------------------------------------------------------------

@command("dbsize", 1, "readonly fast")
def dbsize(conn: Connection, args: list[bytes]) -> Reply:
    return later(conn.service.key_count(conn.consistency), p.integer)


@command("time", 1, "fast")
def time_(conn: Connection, args: list[bytes]) -> Reply:
    now_us = time.time_ns() // 1000  # this node's clock, as in Redis
    return p.array([b"%d" % (now_us // 1_000_000), b"%d" % (now_us % 1_000_000)])


@command("flushdb", -1, "write admin")
def flushdb(conn: Connection, args: list[bytes]) -> Reply:
    """FLUSHDB / FLUSHALL [ASYNC|SYNC]: one log entry that deletes every key (raftkv has
    one database, so both are the same; both modes are synchronous)."""
    if len(args) > 2 or (len(args) == 2 and args[1].upper() not in (b"ASYNC", b"SYNC")):
        raise CommandError("ERR syntax error")
    return later(conn.service.flush(), lambda _: p.OK)


TABLE[b"flushall"] = Spec("flushall", -1, frozenset({"write", "admin"}), flushdb)
