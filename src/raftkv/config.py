"""Configuration: one frozen object built from flags > environment > TOML > defaults.

Every value is validated before anything starts; a bad one raises ConfigError naming
the setting the way the user wrote it (flag, variable or file key), and the CLI
prints that one line and exits with status 2. See ``raftkv.example.toml``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from raftkv.core.eviction import Policy
from raftkv.core.history import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS
from raftkv.storage.wal import FsyncPolicy


class ConfigError(ValueError):
    """A setting's value is unusable; the message names the setting."""


@dataclass(frozen=True, slots=True)
class Peer:
    node_id: str | None
    url: str


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_connections: int = 10_000
    max_header_bytes: int = 16 * 1024
    max_uri_bytes: int = 8 * 1024
    max_body_bytes: int = 2 * 1024 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 10.0
    watch_buffer_bytes: int = 1024 * 1024  # unread by a watch's client: over it, cut


@dataclass(frozen=True, slots=True)
class RespLimits:
    """The Redis protocol front's limits, under Redis's names where it has them. What
    a limit refuses, it refuses on the header that declares a size, before buffering."""

    max_clients: int = 10_000  # maxclients
    max_multibulk_len: int = 1024 * 1024  # arguments in one command
    query_buffer_limit_bytes: int = 1024 * 1024 * 1024  # client-query-buffer-limit
    idle_timeout_s: float = 300.0  # timeout: idle clients are closed (0: never)


@dataclass(frozen=True, slots=True)
class TokenSpec:
    name: str
    sha256: str
    role: str  # "read" | "write" | "admin"
    prefixes: tuple[str, ...] = ("",)
    certificate: str = ""  # a client certificate's CN or DNS name that stands for it


@dataclass(frozen=True, slots=True)
class AuthConfig:
    enabled: bool = False
    tokens: tuple[TokenSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    enabled: bool = False
    per_client_rps: float = 1000.0
    per_client_burst: int = 2000
    per_token_rps: float = 1000.0
    per_token_burst: int = 2000
    failed_auth_per_minute: float = 30.0
    max_in_flight: int = 10_000


@dataclass(frozen=True, slots=True)
class EvictionConfig:
    policy: Policy = Policy.NOEVICTION
    max_keys: int = 0
    max_memory_bytes: int = 0


@dataclass(frozen=True, slots=True)
class StorageConfig:
    segment_max_bytes: int = 64 * 1024 * 1024
    snapshot_threshold_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TxnLimits:
    """How big one transaction may be (etcd's 128-op default is its users' top
    complaint; these are generous, and a refusal names the setting that raises them)."""

    max_ops: int = 10_000
    max_bytes: int = 16 * 1024 * 1024  # keys and values of every op together


@dataclass(frozen=True, slots=True)
class HistoryLimits:
    """How much of the change history each node keeps (DATA-MODEL.md section 3): WATCH
    sees a key's removal as far back as it reaches, and asks older than it are answered
    "compacted"."""

    max_events: int = DEFAULT_MAX_EVENTS
    max_bytes: int = DEFAULT_MAX_BYTES  # keys and values of the events held


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Where the audit log goes (off without a path) and when it is fsynced."""

    path: str = ""
    fsync: FsyncPolicy = FsyncPolicy.EVERYSEC


@dataclass(frozen=True, slots=True)
class BackupConfig:
    """Scheduled backups (off without a directory): every ``interval_s``, the newest
    ``retain`` files kept."""

    dir: str = ""
    interval_s: float = 3600.0
    retain: int = 24


DEFAULT_PORT = 8080


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    resp_port: int = 6380  # 0: off
    udp_port: int = 8080  # 0: off
    data_dir: str = "./data"
    fsync: FsyncPolicy = FsyncPolicy.ALWAYS
    node_id: str = "n1"
    peers: tuple[Peer, ...] = ()
    cluster_secret: str = ""  # HMAC key for peer traffic; off loopback, it or peer TLS
    tls_cert: str | None = None  # PEM files; with a cert, HTTP and RESP speak TLS only
    tls_key: str | None = None
    tls_client_ca: str | None = None  # clients must present a certificate it signed
    peer_tls_cert: str | None = None  # peer links over mutual TLS (needs tls_cert)
    peer_tls_key: str | None = None
    peer_tls_ca: str | None = None
    raft_tick_ms: int = 100  # election timeout is 10-20 ticks, heartbeats every 2
    max_value_bytes: int = 1024 * 1024
    shutdown_timeout_s: float = 10.0
    log_format: str = "json"
    log_level: str = "info"
    insecure: bool = False
    cors_origins: tuple[str, ...] = ()
    keyspace_notifications: bool = False
    access_log: bool = True  # one line per request; off only to measure what it costs
    request_metrics: bool = True  # per-request counters and histograms
    http: HttpLimits = field(default_factory=HttpLimits)
    resp: RespLimits = field(default_factory=RespLimits)
    auth: AuthConfig = field(default_factory=AuthConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    eviction: EvictionConfig = field(default_factory=EvictionConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    txn: TxnLimits = field(default_factory=TxnLimits)
    history: HistoryLimits = field(default_factory=HistoryLimits)
    audit: AuditConfig = field(default_factory=AuditConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    config_file: str | None = None

    @property
    def cluster(self) -> bool:
        return bool(self.peers)

    @property
    def loopback(self) -> bool:
        """Whether the listeners are reachable from this machine only."""
        return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback


# --- parsers: raw string or TOML value -> typed value, ValueError with a reason -------

def _int_range(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError(f"must be an integer from {lo} to {hi}")
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"must be an integer from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be an integer from {lo} to {hi}")
        return value
    return parse


def _seconds(raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError("must be a number of seconds") from None
    if not 0 < value <= 86_400:
        raise ValueError("must be more than 0 and at most 86400 seconds")
    return value


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value
    return parse


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _host(raw: Any) -> str:
    value = str(raw).strip()
    if value == "localhost":
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("must be an IP address (or localhost)") from None
    return value


def _node_id(raw: Any) -> str:
    value = str(raw).strip()
    if not value or len(value) > 64 or not all(c.isalnum() or c in "-_." for c in value):
        raise ValueError("must be 1-64 characters of letters, digits, '-', '_' or '.'")
    return value


def _peers(raw: Any) -> tuple[Peer, ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    peers = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        node_id, sep, url = item.partition("=")
        if not sep:
            node_id, url = "", item
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
            raise ValueError(f"{item!r} is not an http(s)://host:port URL")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"{item!r} must be a base URL without a path")
        peers.append(Peer(_node_id(node_id) if node_id else None, url.rstrip("/")))
    urls = [p.url for p in peers]
    if len(set(urls)) != len(urls):
        raise ValueError("lists a URL twice")
    return tuple(peers)


def _secret(raw: Any) -> str:
    secret = str(raw)
    if secret and len(secret) < 16:
        raise ValueError("must be at least 16 characters")
    return secret


def _path(raw: Any) -> str:
    value = str(raw).strip()
    if not value:
        raise ValueError("must be a file path")
    return value


def _origins(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    return tuple(s for s in (str(i).strip() for i in items) if s)


@dataclass(frozen=True, slots=True)
class _Setting:
    name: str  # the Config field and the TOML key
    flag: str | None
    envs: tuple[str, ...]
    parse: Callable[[Any], Any]


_PORT = _int_range(0, 65535)
SETTINGS: tuple[_Setting, ...] = (
    _Setting("host", "--host", ("RAFTKV_HOST",), _host),
    _Setting("port", "--port", ("RAFTKV_PORT", "KVSTORE_PORT", "PORT"), _int_range(1, 65535)),
    _Setting("resp_port", "--resp-port", ("RAFTKV_RESP_PORT",), _PORT),
    _Setting("udp_port", "--udp-port", ("RAFTKV_UDP_PORT",), _PORT),
    _Setting("data_dir", "--data-dir", ("RAFTKV_DATA_DIR",), lambda raw: str(raw) or "./data"),
    _Setting("fsync", "--fsync", ("RAFTKV_FSYNC",),
             lambda raw: FsyncPolicy(_choice("always", "everysec", "no")(raw))),
    _Setting("node_id", "--node-id", ("RAFTKV_NODE_ID", "NODE_ID"), _node_id),
    _Setting("peers", "--peers", ("RAFTKV_PEERS", "PEERS"), _peers),
    _Setting("cluster_secret", "--cluster-secret", ("RAFTKV_CLUSTER_SECRET",), _secret),
    _Setting("tls_cert", "--tls-cert", ("RAFTKV_TLS_CERT",), _path),
    _Setting("tls_key", "--tls-key", ("RAFTKV_TLS_KEY",), _path),
    _Setting("tls_client_ca", "--tls-client-ca", ("RAFTKV_TLS_CLIENT_CA",), _path),
    _Setting("peer_tls_cert", "--peer-tls-cert", ("RAFTKV_PEER_TLS_CERT",), _path),
    _Setting("peer_tls_key", "--peer-tls-key", ("RAFTKV_PEER_TLS_KEY",), _path),
    _Setting("peer_tls_ca", "--peer-tls-ca", ("RAFTKV_PEER_TLS_CA",), _path),
    _Setting("raft_tick_ms", "--raft-tick-ms", ("RAFTKV_RAFT_TICK_MS",), _int_range(10, 10_000)),
    _Setting("max_value_bytes", "--max-value-bytes", ("RAFTKV_MAX_VALUE_BYTES",),
             _int_range(1, 512 * 1024 * 1024)),
    _Setting("shutdown_timeout_s", "--shutdown-timeout", ("RAFTKV_SHUTDOWN_TIMEOUT",), _seconds),
    _Setting("log_format", "--log-format", ("RAFTKV_LOG_FORMAT",), _choice("console", "json")),
    _Setting("log_level", "--log-level", ("RAFTKV_LOG_LEVEL",),
             _choice("debug", "info", "warning", "error")),
    _Setting("insecure", "--insecure", ("RAFTKV_INSECURE",), _bool),
    _Setting("cors_origins", None, ("RAFTKV_CORS_ORIGINS",), _origins),
    _Setting("keyspace_notifications", None, ("RAFTKV_KEYSPACE_NOTIFICATIONS",), _bool),
    _Setting("access_log", None, ("RAFTKV_ACCESS_LOG",), _bool),
    _Setting("request_metrics", None, ("RAFTKV_REQUEST_METRICS",), _bool),
)

_SECTIONS: dict[str, tuple[type, dict[str, Callable[[Any], Any]]]] = {
    "http": (HttpLimits, {
        "max_connections": _int_range(1, 1_000_000),
        "max_header_bytes": _int_range(1024, 1024 * 1024),
        "max_uri_bytes": _int_range(256, 1024 * 1024),
        "max_body_bytes": _int_range(1024, 1024 * 1024 * 1024),
        "header_timeout_s": _seconds, "body_timeout_s": _seconds, "idle_timeout_s": _seconds,
        "watch_buffer_bytes": _int_range(4096, 1024 * 1024 * 1024),
    }),
    "resp": (RespLimits, {
        "max_clients": _int_range(1, 1_000_000),
        "max_multibulk_len": _int_range(1, 2**31 - 1),
        "query_buffer_limit_bytes": _int_range(1024 * 1024, 2**40),
        "idle_timeout_s": lambda raw: 0.0 if raw in (0, "0") else _seconds(raw),
    }),
    "rate_limit": (RateLimitConfig, {
        "enabled": _bool,
        "per_client_rps": lambda r: float(_int_range(1, 10**7)(r)),
        "per_client_burst": _int_range(1, 10**7),
        "per_token_rps": lambda r: float(_int_range(1, 10**7)(r)),
        "per_token_burst": _int_range(1, 10**7),
        "failed_auth_per_minute": lambda r: float(_int_range(1, 10**6)(r)),
        "max_in_flight": _int_range(1, 10**7),
    }),
    "eviction": (EvictionConfig, {
        "policy": lambda r: Policy(_choice(*[p.value for p in Policy])(r)),
        "max_keys": _int_range(0, 2**40),
        "max_memory_bytes": _int_range(0, 2**50),
    }),
    "storage": (StorageConfig, {
        "segment_max_bytes": _int_range(4096, 2**34),
        "snapshot_threshold_bytes": _int_range(4096, 2**40),
    }),
    "txn": (TxnLimits, {
        "max_ops": _int_range(1, 10_000_000),
        "max_bytes": _int_range(1024, 2**34),
    }),
    "history": (HistoryLimits, {
        "max_events": _int_range(1, 100_000_000),
        "max_bytes": _int_range(1024, 2**40),
    }),
    "audit": (AuditConfig, {
        "path": _path,
        "fsync": lambda raw: FsyncPolicy(_choice("always", "everysec", "no")(raw)),
    }),
    "backup": (BackupConfig, {
        "dir": _path,
        "interval_s": lambda raw: float(_int_range(1, 7 * 86_400)(raw)),
        "retain": _int_range(1, 100_000),
    }),
}


def _parse_tokens(raw: Any) -> tuple[TokenSpec, ...]:
    if not isinstance(raw, list):
        raise ValueError("must be an array of tables ([[auth.tokens]])")
    tokens = []
    for i, item in enumerate(raw):
        where = f"auth.tokens[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"invalid setting {where}: must be a table")
        unknown = set(item) - {"name", "sha256", "role", "prefixes", "certificate"}
        if unknown:
            raise ConfigError(f"invalid setting {where}.{sorted(unknown)[0]}: unknown key")
        name = str(item.get("name", f"token{i}"))
        digest = str(item.get("sha256", "")).lower()
        certificate = str(item.get("certificate", ""))
        if certificate and "sha256" not in item:
            digest = ""
        elif len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"invalid setting {where}.sha256: must be 64 hex digits "
                              f"(the SHA-256 of the token; `raftkv token new` prints one)")
        try:
            role = _choice("read", "write", "admin")(item.get("role", "read"))
        except ValueError as exc:
            raise ConfigError(f"invalid setting {where}.role: {exc}") from None
        prefixes = item.get("prefixes", [""])
        if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
            raise ConfigError(f"invalid setting {where}.prefixes: must be a list of strings")
        tokens.append(TokenSpec(name, digest, role, tuple(prefixes), certificate))
    return tuple(tokens)


def load(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
         config_file: str | None = None) -> Config:
    """Build and validate the Config. ``flags`` maps field names to values given on
    the command line (None = not given)."""
    flags = flags or {}
    env = os.environ if env is None else env
    path = config_file or env.get("RAFTKV_CONFIG") or None
    toml: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                toml = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"invalid setting --config: cannot read {path}: "
                              f"{exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid setting --config: {path} is not valid TOML: {exc}") from None

    known = {s.name for s in SETTINGS} | set(_SECTIONS) | {"auth"}
    for key in toml:
        if key not in known:
            raise ConfigError(f"invalid setting {key} in {path}: unknown key")

    values: dict[str, Any] = {}
    given: set[str] = set()
    for s in SETTINGS:
        raw, where = None, None
        if flags.get(s.name) is not None:
            raw, where = flags[s.name], s.flag
        else:
            for var in s.envs:
                if env.get(var) not in (None, ""):
                    raw, where = env[var], var
                    break
            else:
                if s.name in toml:
                    raw, where = toml[s.name], f"{s.name} in {path}"
        if where is None:
            continue
        try:
            values[s.name] = s.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"invalid setting {where}: {exc} (got {raw!r})") from None
        given.add(s.name)

    for section, (cls, parsers) in _SECTIONS.items():
        table = toml.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"invalid setting {section} in {path}: must be a table")
        parsed = {}
        for key, raw in table.items():
            if key not in parsers:
                raise ConfigError(f"invalid setting {section}.{key} in {path}: unknown key")
            try:
                parsed[key] = parsers[key](raw)
            except ValueError as exc:
                raise ConfigError(f"invalid setting {section}.{key} in {path}: {exc} "
                                  f"(got {raw!r})") from None
        values[section] = cls(**parsed)

    auth_table = toml.get("auth", {})
    if not isinstance(auth_table, dict) or set(auth_table) - {"enabled", "tokens"}:
        raise ConfigError(f"invalid setting auth in {path}: only 'enabled' and 'tokens' belong "
                          f"there")
    try:
        tokens = _parse_tokens(auth_table.get("tokens", []))
        enabled = _bool(auth_table.get("enabled", bool(tokens)))
    except ValueError as exc:
        raise ConfigError(f"invalid setting auth in {path}: {exc}") from None
    if enabled and not tokens:
        raise ConfigError(f"invalid setting auth.enabled in {path}: auth is on but no "
                          f"[[auth.tokens]] are defined")
    values["auth"] = AuthConfig(enabled, tokens)

    # Defaults that depend on other settings (CONTRACT.md).
    if "udp_port" not in given:
        values["udp_port"] = values.get("port", DEFAULT_PORT)
    if "resp_port" not in given and values.get("peers"):
        values["resp_port"] = 0
    if "log_format" not in given:
        values["log_format"] = "console" if os.isatty(2) else "json"
    values["config_file"] = path
    config = Config(**values)
    _check_combinations(config)
    return config


def _check_combinations(config: Config) -> None:
    if config.resp_port and config.resp_port == config.port:
        raise ConfigError(f"invalid setting --resp-port: {config.resp_port} is already --port")
    loopback = config.loopback
    if not loopback and not config.auth.enabled and not config.insecure:
        raise ConfigError(f"invalid setting --host: binding {config.host} without auth exposes "
                          f"the data; define [[auth.tokens]] or pass --insecure")
    if config.peers and not loopback and not (config.cluster_secret or config.peer_tls_cert):
        raise ConfigError(f"invalid setting --cluster-secret: binding {config.host} in a cluster "
                          f"needs a shared secret (or --peer-tls-cert) so peers can "
                          f"authenticate each other")
    _check_tls(config)
    if config.resp.query_buffer_limit_bytes <= config.max_value_bytes:
        raise ConfigError(f"invalid setting resp.query_buffer_limit_bytes: "
                          f"{config.resp.query_buffer_limit_bytes} leaves no room for a value of "
                          f"--max-value-bytes ({config.max_value_bytes})")
    if config.max_value_bytes > config.http.max_body_bytes:
        raise ConfigError("invalid setting --max-value-bytes: larger than http.max_body_bytes "
                          f"({config.http.max_body_bytes})")


def _check_tls(config: Config) -> None:
    for a, b in (("tls_cert", "tls_key"), ("peer_tls_cert", "peer_tls_key"),
                 ("peer_tls_cert", "peer_tls_ca")):
        for given, missing in ((a, b), (b, a)):
            if getattr(config, given) and not getattr(config, missing):
                raise ConfigError(f"invalid setting --{given.replace('_', '-')}: needs "
                                  f"--{missing.replace('_', '-')} too")
    if config.tls_client_ca and not config.tls_cert:
        raise ConfigError("invalid setting --tls-client-ca: needs --tls-cert (client "
                          "certificates are verified over TLS)")
    if config.peer_tls_cert and not config.tls_cert:
        raise ConfigError("invalid setting --peer-tls-cert: needs --tls-cert too (peers dial "
                          "the HTTP port, which then speaks TLS)")
    scheme = "https" if config.tls_cert else "http"  # peers dial the HTTP port
    for peer in config.peers:
        if not peer.url.startswith(scheme + "://"):
            raise ConfigError(f"invalid setting --peers: {peer.url} must be {scheme}:// "
                              f"{'with' if config.tls_cert else 'without'} --tls-cert")


def masked(config: Config) -> dict[str, Any]:
    """The effective config as plain data, with secrets masked (``config show``)."""
    data = dataclasses.asdict(config)
    if data["cluster_secret"]:
        data["cluster_secret"] = "…"
    for token in data["auth"]["tokens"]:
        token["sha256"] = token["sha256"][:8] + "…"
    data["fsync"] = str(config.fsync)
    data["eviction"]["policy"] = str(config.eviction.policy)
    data["audit"]["fsync"] = str(config.audit.fsync)
    return data
