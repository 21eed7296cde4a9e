"""TLS for the API ports (HTTP and RESP) and for the peer links, and its reload.

One listening context serves both API ports. Its SNI callback gives every new
connection the context current at that moment, so a reload reaches new connections
while connections already open keep theirs:

* a dialing peer names ``PEER_SERVER_NAME`` in SNI and gets the *peer* context: the
  node's peer certificate, and the peer CA to verify the dialer's certificate;
* everyone else gets the *client* context: ``--tls-cert``/``--tls-key``, and with
  ``--tls-client-ca`` a certificate is required and verified against that CA.

OpenSSL keeps the verify mode a connection started with, so the listening context
asks for a certificate whenever either side may need one (required with a client
CA, optional otherwise when peers use TLS). A peer link is accepted only over a
connection whose certificate the peer context verified (``is_peer``). The dialing
side verifies the acceptor against the same peer CA and presents its own peer
certificate: a node with a certificate from another CA can neither join nor be
joined. Nodes are not told apart by certificate names; the handshake's node id is.
Without peer TLS, a cluster whose API port speaks TLS still links over TLS, for
privacy only: the cluster secret's HMAC authenticates the peers then.

Reload: on SIGHUP (``app.py``) and when a file's size or modification time changes
(``run`` looks every ``WATCH_INTERVAL_S``), every context is built anew from the
files. Unreadable or mismatched files leave the old contexts in place and a warning
names the file; at start-up they are a ConfigError (exit 2). Each load logs the
certificates' expiry and sets ``raftkv_tls_certificate_expiry_timestamp_seconds``.

Versions: TLS 1.2 and 1.3; on 1.2 only ECDHE key exchange with AEAD ciphers.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509

from raftkv.config import Config, ConfigError

log = logging.getLogger("raftkv.tls")

PEER_SERVER_NAME: Final = "raftkv-peer.invalid"  # the SNI a dialing peer sends
WATCH_INTERVAL_S: Final = 1.0
TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"


class PeerContext(ssl.SSLContext):
    """A listening context that verifies peer nodes against the peer CA."""


@dataclass(frozen=True, slots=True)
class _File:
    setting: str  # the flag that named it, for messages
    path: str


@dataclass(frozen=True, slots=True)
class Certificate:
    """What a reload tells about a certificate in use."""

    role: str  # "api" | "peer"
    subject: str
    serial: int
    not_after_s: float  # Unix time


@dataclass(frozen=True, slots=True)
class _Contexts:
    client: ssl.SSLContext | None
    peer_server: ssl.SSLContext | None
    peer_dial: ssl.SSLContext | None
    certificates: tuple[Certificate, ...]


class _SSLObject(ssl.SSLObject):
    """``ssl.SSLObject`` whose read, write and pending are the C methods of the
    connection itself: the library's wrappers only pass the same arguments through,
    and the event loop calls them once or twice per request."""

    @classmethod
    def _create(cls, *args: Any, **kwargs: Any) -> _SSLObject:
        made: _SSLObject = super()._create(*args, **kwargs)  # type: ignore[misc]
        inner = made._sslobj  # type: ignore[attr-defined]
        made.read, made.write, made.pending = inner.read, inner.write, inner.pending  # type: ignore[method-assign]
        return made


def _restrict(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.sslobject_class = _SSLObject
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert: _File, key: _File) -> None:
    for f in (cert, key):
        _readable(f)
    try:
        ctx.load_cert_chain(cert.path, key.path)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ConfigError(f"invalid setting {key.setting}: {key.path} is not the key of "
                              f"{cert.setting} {cert.path}") from None
        raise ConfigError(f"invalid setting {cert.setting}: {cert.path} and {key.path} are not "
                          f"a PEM certificate and its key ({exc.reason})") from None


def _load_ca(ctx: ssl.SSLContext, ca: _File) -> None:
    _readable(ca)
    try:
        ctx.load_verify_locations(cafile=ca.path)
    except ssl.SSLError as exc:
        raise ConfigError(f"invalid setting {ca.setting}: {ca.path} holds no PEM CA "
                          f"certificate ({exc.reason})") from None


def _readable(f: _File) -> None:
    try:
        with open(f.path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"invalid setting {f.setting}: cannot read {f.path}: "
                          f"{exc.strerror}") from None


def _describe(role: str, cert: _File) -> Certificate:
    with open(cert.path, "rb") as fh:
        parsed = x509.load_pem_x509_certificate(fh.read())
    return Certificate(role, parsed.subject.rfc4514_string(), parsed.serial_number,
                       parsed.not_valid_after_utc.timestamp())


def certificate_names(peercert: dict[str, Any] | None) -> tuple[str, ...]:
    """A verified client certificate's names: its subject CN, then its DNS and email
    subjectAltNames (``getpeercert()``'s shape). Empty without a certificate."""
    if not peercert:
        return ()
    names = [value for rdn in peercert.get("subject", ()) for key, value in rdn
             if key == "commonName"]
    names += [value for kind, value in peercert.get("subjectAltName", ())
              if kind in ("DNS", "email")]
    return tuple(names)


class Tls:
    """The node's TLS contexts, rebuilt by ``reload``. Built from the config at
    start-up (raises ConfigError on unusable files)."""

    def __init__(self, config: Config,
                 observe: Callable[[tuple[Certificate, ...], bool], None] | None = None
                 ) -> None:
        self._files = _files(config)
        self.api = config.tls_cert is not None
        self.peers = config.peer_tls_cert is not None
        self._observe = observe
        self._current = self._build()
        self._stamps = self._stat()
        # the first client context listens; its SNI callback hands out the current ones
        self.listen_context = self._current.client
        if self.listen_context is not None:
            self.listen_context.sni_callback = self._pick
        self._announce()

    # --- what the listeners and the dialer use ----------------------------------------

    def dial_context(self) -> ssl.SSLContext | None:
        """The context to dial peers with (None: peers are dialed in plain TCP, as their
        API ports speak it)."""
        return self._current.peer_dial

    def _pick(self, ssl_object: Any, server_name: str | None, _: ssl.SSLContext) -> None:
        current = self._current
        if server_name == PEER_SERVER_NAME and current.peer_server is not None:
            ssl_object.context = current.peer_server
        elif current.client is not None:
            ssl_object.context = current.client

    @staticmethod
    def is_peer(transport: asyncio.BaseTransport) -> bool:
        """Whether ``transport``'s certificate was verified against the peer CA."""
        ssl_object = transport.get_extra_info("ssl_object")
        return (ssl_object is not None and isinstance(ssl_object.context, PeerContext)
                and bool(ssl_object.getpeercert()))

    # --- reload -----------------------------------------------------------------------

    def reload(self) -> bool:
        """Build every context from the files again; keep the old ones if any file is
        unusable. True when the new contexts are in use."""
        try:
            self._current = self._build()
        except (ConfigError, OSError, ValueError) as exc:  # (a file replaced mid-read too)
            log.warning("TLS files not reloaded, still serving the previous ones: %s", exc)
            if self._observe is not None:
                self._observe(self._current.certificates, False)
            return False
        self._announce()
        return True

    async def run(self) -> None:
        """Reload whenever a file changes, until cancelled."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            stamps = self._stat()
            if stamps != self._stamps:
                self._stamps = stamps
                self.reload()

    def _announce(self) -> None:
        for cert in self._current.certificates:
            log.info("TLS certificate loaded", extra={
                "role": cert.role, "subject": cert.subject, "serial": f"{cert.serial:x}",
                "notAfter": _iso(cert.not_after_s)})
        if self._observe is not None:
            self._observe(self._current.certificates, True)

    def _stat(self) -> tuple[tuple[int, int] | None, ...]:
        stamps: list[tuple[int, int] | None] = []
        for f in self._files.values():
            try:
                st = os.stat(f.path)
                stamps.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def _build(self) -> _Contexts:
        files = self._files
        client = peer_server = peer_dial = None
        certificates = []
        if self.api:
            client = _restrict(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
            _load_chain(client, files["cert"], files["key"])
            if "client_ca" in files:
                _load_ca(client, files["client_ca"])
                client.verify_mode = ssl.CERT_REQUIRED
            elif self.peers:  # a dialing peer's certificate is asked for (see above)
                client.verify_mode = ssl.CERT_OPTIONAL
            certificates.append(_describe("api", files["cert"]))
        if self.peers:
            peer_server = _restrict(PeerContext(ssl.PROTOCOL_TLS_SERVER))
            _load_chain(peer_server, files["peer_cert"], files["peer_key"])
            _load_ca(peer_server, files["peer_ca"])
            peer_server.verify_mode = ssl.CERT_REQUIRED
            peer_dial = _restrict(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
            peer_dial.check_hostname = False  # nodes are told apart by the handshake's id
            _load_chain(peer_dial, files["peer_cert"], files["peer_key"])
            _load_ca(peer_dial, files["peer_ca"])
            certificates.append(_describe("peer", files["peer_cert"]))
        elif self.api:  # the peers' API ports speak TLS; the secret authenticates them
            peer_dial = _restrict(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
            peer_dial.check_hostname = False
            peer_dial.verify_mode = ssl.CERT_NONE
        return _Contexts(client, peer_server, peer_dial, tuple(certificates))


def _files(config: Config) -> dict[str, _File]:
    named = {"cert": ("--tls-cert", config.tls_cert), "key": ("--tls-key", config.tls_key),
             "client_ca": ("--tls-client-ca", config.tls_client_ca),
             "peer_cert": ("--peer-tls-cert", config.peer_tls_cert),
             "peer_key": ("--peer-tls-key", config.peer_tls_key),
             "peer_ca": ("--peer-tls-ca", config.peer_tls_ca)}
    return {name: _File(flag, path) for name, (flag, path) in named.items() if path}


def _iso(unix_s: float) -> str:
    return datetime.datetime.fromtimestamp(unix_s, datetime.UTC).isoformat()

