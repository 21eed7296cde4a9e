"""Peer links: how nodes reach each other through the URLs in PEERS alone.

A node dials every URL its own PEERS gives (never an address learned from a peer or
from the log) with an HTTP/1.1 upgrade on the peer's API port::

    GET /v1/raft/stream HTTP/1.1
    Connection: Upgrade
    Upgrade: raftkv-peer/1
    X-Raftkv-Node: n1
    X-Raftkv-Incarnation: 9f3c...    random per data directory (see cluster.py)
    X-Raftkv-Fresh: 1                this node holds no Raft state yet
    X-Raftkv-Nonce: ...              with a cluster secret: fresh per connection
    X-Raftkv-Proof: ...              HMAC of the above under the secret

The peer answers ``101 Switching Protocols`` with the same headers about itself (or
``409``/``401`` with one line saying why not). From then on the connection carries
frames both ways, so a node that nobody dials (a new member, a node behind NAT) is
still reached over the connection it opened::

    frame := length u32 | [mac 16 bytes] | kind u8 | payload
    mac   := HMAC-SHA256(session key, direction | sequence u64 | kind | payload)[:16]

The session key is derived from the secret and both nonces, so a frame cannot be
replayed on another connection or in another position. Without a secret (loopback
only; config.py refuses otherwise) there is no mac.

With peer TLS (``tls.py``) a node dials over TLS, naming ``PEER_SERVER_NAME`` and
presenting its peer certificate, and accepts a link only over a connection whose
certificate the peer CA signed: the peer CA is the authentication, with or without a
secret on top. With TLS on the API port only, links are TLS for privacy and the
secret authenticates them.

Sending never blocks: Raft tolerates loss, so a message for a peer with no link, or
whose socket buffer is over ``MAX_BUFFERED_BYTES``, is dropped and counted.

What arrives (Raft messages, forwarded writes and their replies, a peer with no link
left) queues in the network's inbox; ``PeerNetwork.run(handler)`` keeps the dialers
going and hands the inbox to its handler in arrival order.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import os
import random
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urlsplit

import orjson

from raftkv.config import Peer
from raftkv.replication.raft.codec import MessageCodecError, decode_message, encode_message
from raftkv.replication.raft.messages import Message
from raftkv.tls import PEER_SERVER_NAME, Tls

log = logging.getLogger("raftkv.peers")

PATH: Final = b"/v1/raft/stream"
PROTOCOL: Final = b"raftkv-peer/1"
MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
MAX_BUFFERED_BYTES: Final = 32 * 1024 * 1024
MAC_BYTES: Final = 16
HANDSHAKE_TIMEOUT_S: Final = 2.0
BACKOFF_S: Final = (0.05, 1.0)  # first and largest pause between dial attempts

RAFT, FORWARD, FORWARD_REPLY, CALL, CALL_REPLY = 1, 2, 3, 4, 5
_LEN: Final = struct.Struct("<I")
_SEQ: Final = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class Hello:
    """What each side of a link says about itself in the handshake."""

    node_id: str
    incarnation: str
    fresh: bool


class Refused(Exception):
    """Raised when a peer refuses our handshake (the message says why)."""


class PeerHandler(Protocol):
    """Who ``PeerNetwork.run`` hands what arrives to."""

    def on_message(self, message: Message) -> None: ...

    def on_peer_unreachable(self, node_id: str) -> None:
        """Every link to ``node_id`` is down."""

    def on_forward(self, link: PeerLink, call: int, payload: bytes) -> None:
        """A follower forwarded a write (``payload``: an encoded command)."""

    def on_forward_reply(self, call: int, payload: bytes) -> None: ...

    def on_call(self, link: PeerLink, call: int, payload: bytes) -> None:
        """A node called the leader's service (``calls.py``)."""

    def on_call_reply(self, call: int, payload: bytes) -> None: ...


_UNREACHABLE: Final = 0  # an inbox event kind beside the frame kinds


def _proof(secret: bytes, role: bytes, hello: Hello, *nonces: bytes) -> bytes:
    parts = [role, hello.node_id.encode(), hello.incarnation.encode(),
             b"1" if hello.fresh else b"0", *nonces]
    return hmac.new(secret, b"|".join(parts), hashlib.sha256).hexdigest().encode()


def _hello_headers(hello: Hello) -> list[tuple[bytes, bytes]]:
    return [(b"X-Raftkv-Node", hello.node_id.encode()),
            (b"X-Raftkv-Incarnation", hello.incarnation.encode()),
            (b"X-Raftkv-Fresh", b"1" if hello.fresh else b"0")]


def _parse_hello(headers: dict[bytes, bytes]) -> Hello:
    try:
        node_id = headers[b"x-raftkv-node"].decode()
        incarnation = headers[b"x-raftkv-incarnation"].decode()
    except (KeyError, UnicodeDecodeError):
        raise Refused("the handshake lacks X-Raftkv-Node or X-Raftkv-Incarnation") from None
    return Hello(node_id, incarnation, headers.get(b"x-raftkv-fresh") == b"1")


class PeerLink(asyncio.Protocol):
    """One connection to one peer, after (dialer: also during) the handshake."""

    def __init__(self, network: PeerNetwork, dialer: bool) -> None:
        self.network = network
        self.dialer = dialer
        self.transport: asyncio.Transport | None = None
        self.peer: Hello | None = None
        self.handshake: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._established = False
        self._nonce = b""
        self._key = b""
        self._send_seq = 0
        self._recv_seq = 0
        self._out: list[bytes] = []
        self._flush_scheduled = False

    # --- handshake ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def dial(self, host: str) -> None:
        """Write the upgrade request (the dialer's first bytes)."""
        net = self.network
        self._nonce = os.urandom(16).hex().encode()
        headers = [(b"Host", host.encode()), (b"Connection", b"Upgrade"),
                   (b"Upgrade", PROTOCOL), *_hello_headers(net.hello())]
        if net.secret:
            headers += [(b"X-Raftkv-Nonce", self._nonce),
                        (b"X-Raftkv-Proof", _proof(net.secret, b"dial", net.hello(),
                                                   self._nonce))]
        head = b"GET " + PATH + b" HTTP/1.1\r\n" + b"".join(
            name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"
        assert self.transport is not None
        self.transport.write(head)

    def _on_response(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        code = status[1] if len(status) > 1 else b""
        if code != b"101":
            try:  # the body says why, in raftkv's error shape
                reason = str(orjson.loads(bytes(self._buffer)).get("message", ""))
            except orjson.JSONDecodeError:
                reason = ""
            raise Refused(reason or f"answered {code.decode(errors='replace')}")
        hello = _parse_hello(headers)
        net = self.network
        if net.secret:
            theirs = headers.get(b"x-raftkv-nonce", b"")
            expected = _proof(net.secret, b"accept", hello, theirs, self._nonce)
            if not hmac.compare_digest(expected, headers.get(b"x-raftkv-proof", b"")):
                raise Refused("the peer does not know the cluster secret")
            self._key = hmac.new(net.secret, self._nonce + b"|" + theirs,
                                 hashlib.sha256).digest()
        self._establish(hello)

    def accept(self, headers: dict[bytes, bytes]) -> bytes:
        """The acceptor's side: check the request, return the 101 response bytes.
        Raises Refused (with the reason) when the dialer may not join."""
        net = self.network
        hello = _parse_hello(headers)
        if net.secret:
            theirs = headers.get(b"x-raftkv-nonce", b"")
            expected = _proof(net.secret, b"dial", hello, theirs)
            if not theirs or not hmac.compare_digest(expected,
                                                      headers.get(b"x-raftkv-proof", b"")):
                raise Refused("unauthenticated: the cluster secret does not match")
            self._nonce = os.urandom(16).hex().encode()
            self._key = hmac.new(net.secret, theirs + b"|" + self._nonce,
                                 hashlib.sha256).digest()
        refusal = net.admit(hello)
        if refusal:
            raise Refused(refusal)
        headers_out = [(b"Connection", b"Upgrade"), (b"Upgrade", PROTOCOL),
                       *_hello_headers(net.hello())]
        if net.secret:
            headers_out += [(b"X-Raftkv-Nonce", self._nonce),
                            (b"X-Raftkv-Proof", _proof(net.secret, b"accept", net.hello(),
                                                       self._nonce, theirs))]
        self._establish(hello)
        return b"HTTP/1.1 101 Switching Protocols\r\n" + b"".join(
            name + b": " + value + b"\r\n" for name, value in headers_out) + b"\r\n"

    def _establish(self, hello: Hello) -> None:
        self.peer = hello
        self._established = True
        if not self.handshake.done():
            self.handshake.set_result(hello)

    # --- frames ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        try:
            if not self._established:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > 16 * 1024:
                        raise Refused("handshake response too large")
                    return
                head = bytes(buf[:end])
                del buf[:end + 4]
                self._on_response(head)
            self._read_frames()
        except (Refused, MessageCodecError, ValueError) as exc:
            self._fail(exc)

    def _read_frames(self) -> None:
        buf = self._buffer
        mac_len = MAC_BYTES if self._key else 0
        while len(buf) >= 4:
            (length,) = _LEN.unpack_from(buf)
            if length > MAX_FRAME_BYTES or length < mac_len + 1:
                raise ValueError(f"frame length {length} out of bounds")
            if len(buf) < 4 + length:
                return
            body = bytes(buf[4 + mac_len: 4 + length])
            if mac_len:
                mac = bytes(buf[4: 4 + mac_len])
                if not hmac.compare_digest(mac, self._mac(b"in", self._recv_seq, body)):
                    raise ValueError("frame authentication failed")
            self._recv_seq += 1
            del buf[:4 + length]
            assert self.peer is not None
            self.network.on_frame(self, body[0], body[1:])

    def _mac(self, direction: bytes, seq: int, body: bytes) -> bytes:
        # Each side labels its own sends: the dialer's "out" is the acceptor's "in".
        label = b"d" if (direction == b"out") == self.dialer else b"a"
        return hmac.new(self._key, label + _SEQ.pack(seq) + body,
                        hashlib.sha256).digest()[:MAC_BYTES]

    def send(self, kind: int, payload: bytes) -> bool:
        transport = self.transport
        if (transport is None or transport.is_closing() or not self._established
                or transport.get_write_buffer_size() > MAX_BUFFERED_BYTES):
            return False
        body = bytes([kind]) + payload
        if self._key:
            mac = self._mac(b"out", self._send_seq, body)
            self._out += (_LEN.pack(len(body) + MAC_BYTES), mac, body)
        else:
            self._out += (_LEN.pack(len(body)), body)
        self._send_seq += 1
        if not self._flush_scheduled:  # one write per turn of the loop, not per frame
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def _fail(self, exc: Exception) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(exc if isinstance(exc, Refused) else Refused(str(exc)))
        else:
            log.warning("closing the link to %s: %s", self.peer.node_id if self.peer else "?",
                        exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(Refused("connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)
        self.network.forget(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class PeerNetwork:
    """Every link of this node, the dialers that keep them up, and frame dispatch."""

    def __init__(self, peers: tuple[Peer, ...], secret: str,
                 hello: Callable[[], Hello], admit: Callable[[Hello], str | None],
                 tls: Tls | None = None) -> None:
        self.peers = peers
        self.tls = tls  # peer links over mutual TLS
        self.secret = secret.encode()
        self.hello = hello
        self.admit = admit  # None to accept the peer, else the reason it may not join
        self.links: dict[str, list[PeerLink]] = {}  # peer id -> live links, newest last
        self.answers: dict[str, Hello | Refused] = {}  # configured URL -> last handshake
        self.dropped = 0
        self._calls = itertools.count(1)
        self._inbox: deque[tuple[int, object, object, object]] = deque()
        self._arrived = asyncio.Event()

    def url_of(self, node_id: str) -> str | None:
        """The configured URL whose node said it is ``node_id`` (None: not yet known)."""
        for url, answer in self.answers.items():
            if isinstance(answer, Hello) and answer.node_id == node_id:
                return url
        return None

    async def run(self, handler: PeerHandler) -> None:
        """Dial every peer (again, whenever a link drops) and hand ``handler`` what
        arrives, until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            for peer in self.peers:
                tasks.create_task(self._dial_forever(peer))
            while True:
                await self._arrived.wait()
                self._arrived.clear()
                inbox = self._inbox
                while inbox:
                    kind, a, b, c = inbox.popleft()
                    if kind == RAFT:
                        handler.on_message(a)  # type: ignore[arg-type]
                    elif kind == FORWARD:
                        handler.on_forward(a, b, c)  # type: ignore[arg-type]
                    elif kind == FORWARD_REPLY:
                        handler.on_forward_reply(a, b)  # type: ignore[arg-type]
                    elif kind == CALL:
                        handler.on_call(a, b, c)  # type: ignore[arg-type]
                    elif kind == CALL_REPLY:
                        handler.on_call_reply(a, b)  # type: ignore[arg-type]
                    else:
                        handler.on_peer_unreachable(a)  # type: ignore[arg-type]

    def _arrive(self, kind: int, a: object, b: object = None, c: object = None) -> None:
        self._inbox.append((kind, a, b, c))
        self._arrived.set()

    async def close(self) -> None:
        """Close every link (after ``run`` has stopped dialing)."""
        for links in list(self.links.values()):
            for link in list(links):
                link.close()

    # --- outgoing ---------------------------------------------------------------------

    def send(self, message: Message) -> None:
        if not self.send_frame(message.to, RAFT, encode_message(message)):
            self.dropped += 1

    def send_frame(self, peer_id: str, kind: int, payload: bytes) -> bool:
        return any(link.send(kind, payload) for link in reversed(self.links.get(peer_id, ())))

    def reachable(self, peer_id: str) -> bool:
        return bool(self.links.get(peer_id))

    def next_call_id(self) -> int:
        return next(self._calls)

    async def _dial_forever(self, peer: Peer) -> None:
        pause = BACKOFF_S[0]
        said = ""
        while True:
            try:
                link = await self._dial(peer)
                self.answers[peer.url] = link.peer  # type: ignore[assignment]
                said = ""
                pause = BACKOFF_S[0]
                await link.closed
            except (OSError, Refused, TimeoutError) as exc:
                if isinstance(exc, Refused):
                    self.answers[peer.url] = exc
                reason = f"{type(exc).__name__}: {exc}"
                if reason != said:  # one line per change, not per attempt
                    log.warning("cannot link to %s: %s", peer.url, reason)
                    said = reason
            await asyncio.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, BACKOFF_S[1])

    async def _dial(self, peer: Peer) -> PeerLink:
        parts = urlsplit(peer.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        loop = asyncio.get_running_loop()
        tls, name = None, None
        if self.tls is not None:
            tls = self.tls.dial_context()
            name = PEER_SERVER_NAME if self.tls.peers else host
        async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
            _, link = await loop.create_connection(lambda: PeerLink(self, True), host, port,
                                                   ssl=tls, server_hostname=name)
            link.dial(parts.netloc)
            try:
                hello = await link.handshake
            except BaseException:
                link.close()
                raise
        if peer.node_id is not None and hello.node_id != peer.node_id:
            link.close()
            raise Refused(f"PEERS names it {peer.node_id} but it says it is {hello.node_id}")
        refusal = self.admit(hello)
        if refusal:
            link.close()
            raise Refused(refusal)
        self.links.setdefault(hello.node_id, []).append(link)
        return link

    # --- incoming ---------------------------------------------------------------------

    def accept(self, headers: dict[bytes, bytes], transport: asyncio.Transport,
               leftover: bytes) -> tuple[int, str] | None:
        """Take over an upgraded HTTP connection. None when accepted (the 101 is
        written); else (status, reason) for the HTTP server to answer with."""
        if headers.get(b"upgrade", b"").lower() != PROTOCOL:
            return 400, "unknown upgrade protocol"
        if self.tls is not None and self.tls.peers and not self.tls.is_peer(transport):
            return 401, "unauthenticated: a peer must present a certificate the peer CA signed"
        link = PeerLink(self, False)
        try:
            response = link.accept(headers)
        except Refused as exc:
            return (401 if "unauthenticated" in str(exc) else 409), str(exc)
        transport.set_protocol(link)
        link.connection_made(transport)
        transport.write(response)
        assert link.peer is not None
        self.links.setdefault(link.peer.node_id, []).append(link)
        if leftover:
            link.data_received(leftover)
        return None

    def on_frame(self, link: PeerLink, kind: int, payload: bytes) -> None:
        if kind == RAFT:
            message = decode_message(payload)
            assert link.peer is not None
            if message.frm != link.peer.node_id:
                raise ValueError(f"{link.peer.node_id} sent a message as {message.frm}")
            self._arrive(RAFT, message)
        elif kind in (FORWARD, CALL):
            (call,) = _SEQ.unpack_from(payload)
            self._arrive(kind, link, call, payload[_SEQ.size:])
        elif kind in (FORWARD_REPLY, CALL_REPLY):
            (call,) = _SEQ.unpack_from(payload)
            self._arrive(kind, call, payload[_SEQ.size:])
        else:
            raise ValueError(f"unknown frame kind {kind}")

    def forget(self, link: PeerLink) -> None:
        if link.peer is not None:
            links = self.links.get(link.peer.node_id, [])
            if link in links:
                links.remove(link)
                if not links:
                    self._arrive(_UNREACHABLE, link.peer.node_id)
