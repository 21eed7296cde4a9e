"""The state machine's image: what a snapshot holds, encoded by the core that owns it.

Storage wraps an image in a snapshot file (``storage/snapshots.py``) and Raft sends
it to a follower in InstallSnapshot chunks; neither looks inside. Version 2 (all
integers little-endian)::

    magic "RKVIMAG4" | index u64 | term u64 | entries u64 | requests u32
    lengths   u32 * (2 * entries)            key length, packed-entry length, ...
    blob      key | packed entry | ...       in key order
    requests  (u32 id length | id | u32 result length | result) * requests
    containers u64, then (u32 key length | key | u32 length | container) * containers
    scripts   u32, then (u32 length | body) * scripts      the script cache, by body
    leases    u32, then (id i64 | ttl i64 | deadline i64 | u32 keys | (u32 length | key)
              * keys) * leases               in id order, keys sorted
    crc32 u32                                over everything before it

A container is encoded by ``containers.py`` (type-tagged). Older versions still
load: version 3 ("RKVIMAG3") is version 4 without the leases, version 2
("RKVIMAG2") version 3 without the scripts, version 1
("RKVSNAP1") version 2 without the containers.

``index`` is the last entry the image covers; ``term`` is kept for images written
before the snapshot file carried it (0 now). Keys are stored in order so that loading
rebuilds the ordered index in O(n). An image that fails its checks raises
CorruptionError naming where it came from.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from dataclasses import dataclass
from itertools import chain
from typing import Final

from raftkv.core.binary import BinaryReader
from raftkv.core.commands import Entry, Outcome, Result, TxnResult, TypedResult
from raftkv.core.containers import Container, decode_container, encode_container
from raftkv.core.keyspace import held, pack, unpack
from raftkv.core.leases import Lease
from raftkv.core.scripts.lua import sha1hex
from raftkv.core.state_machine import Snapshot, StateMachine
from raftkv.core.typed.replies import Reply, decode_reply, encode_reply
from raftkv.errors import CorruptionError

MAGIC: Final = b"RKVIMAG4"
MAGIC_3: Final = b"RKVIMAG3"  # written before leases
MAGIC_2: Final = b"RKVIMAG2"  # written before scripts: no script cache
MAGIC_1: Final = b"RKVSNAP1"  # written before typed values: no containers
_U64: Final = struct.Struct("<Q")
_HEAD: Final = struct.Struct("<8sQQQI")
_U32: Final = struct.Struct("<I")
_RESULT: Final = struct.Struct("<BQIBB")
_LEASE: Final = struct.Struct("<qqqI")


def _encode_entry(entry: Entry | None) -> bytes:
    if entry is None:
        return b""
    packed = pack(entry.value, entry.mod_revision, entry.create_revision, entry.expires_at_ms,
                  entry.version, entry.kind)
    return _U32.pack(len(entry.key)) + entry.key + _U32.pack(len(packed)) + packed


def _decode_entry(data: bytes, pos: int) -> tuple[Entry, int]:
    (klen,) = _U32.unpack_from(data, pos)
    key = data[pos + 4 : pos + 4 + klen]
    pos += 4 + klen
    (plen,) = _U32.unpack_from(data, pos)
    packed = data[pos + 4 : pos + 4 + plen]
    return unpack(key, packed), pos + 4 + plen


_TXN: Final = 2  # in the has_entry byte: a TxnResult, its results follow
_TYPED: Final = 3  # a TypedResult: its reply and events follow


def encode_result(result: Result) -> bytes:
    if isinstance(result, TypedResult):
        out = bytearray(_RESULT.pack(result.outcome, result.revision, result.affected, _TYPED,
                                     0))
        encode_reply(result.reply, out)  # type: ignore[arg-type]
        out += _U32.pack(len(result.events))
        for event, key, kind in result.events:
            for part in (event, key, kind.encode()):
                out += _U32.pack(len(part))
                out += part
        return bytes(out)
    if isinstance(result, TxnResult):
        parts = [_RESULT.pack(result.outcome, result.revision, result.affected, _TXN,
                              result.succeeded),
                 _U32.pack(len(result.results))]
        for sub in result.results:
            encoded = encode_result(sub)
            parts += (_U32.pack(len(encoded)), encoded)
        return b"".join(parts)
    return (_RESULT.pack(result.outcome, result.revision, result.affected,
                         result.entry is not None, result.previous is not None)
            + _encode_entry(result.entry) + _encode_entry(result.previous))


def decode_result(data: bytes) -> Result:
    outcome, revision, affected, has_entry, has_previous = _RESULT.unpack_from(data)
    pos = _RESULT.size
    if has_entry == _TYPED:
        r = BinaryReader(data, ValueError)
        r.pos = pos
        reply: Reply = decode_reply(r)
        (count,) = r.fixed(_U32)
        events = tuple((r.blob(), r.blob(), r.blob().decode()) for _ in range(count))
        return TypedResult(Outcome(outcome), revision, reply, events)
    if has_entry == _TXN:
        (count,) = _U32.unpack_from(data, pos)
        pos += 4
        results = []
        for _ in range(count):
            (size,) = _U32.unpack_from(data, pos)
            results.append(decode_result(data[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        return TxnResult(revision, tuple(results), affected, bool(has_previous))
    entry = previous = None
    if has_entry:
        entry, pos = _decode_entry(data, pos)
    if has_previous:
        previous, pos = _decode_entry(data, pos)
    return Result(Outcome(outcome), revision, entry, previous, affected)


def encode(snapshot: Snapshot) -> bytes:
    """The image's bytes. Runs off the event loop: it sorts and copies."""
    items = sorted(snapshot.entries.items())
    lengths = array("I", [len(part) for part in chain.from_iterable(items)])
    requests = b"".join(
        _U32.pack(len(rid)) + rid + _U32.pack(len(enc := encode_result(res))) + enc
        for rid, res in snapshot.requests.items()
    )
    containers = [_U64.pack(len(snapshot.containers))]
    for key, value in sorted(snapshot.containers.items()):
        raw = snapshot.entries.get(key)
        assert raw is not None
        encoded = encode_container(held(raw, value, 0))
        containers += (_U32.pack(len(key)), key, _U32.pack(len(encoded)), encoded)
    body = b"".join([
        _HEAD.pack(MAGIC, snapshot.index, 0, len(items), len(snapshot.requests)),
        lengths.tobytes(),
        b"".join(chain.from_iterable(items)),
        requests,
        b"".join(containers),
        _U32.pack(len(snapshot.scripts)),
        b"".join(_U32.pack(len(body)) + body for body in sorted(snapshot.scripts.values())),
        _U32.pack(len(snapshot.leases)),
        b"".join(_encode_lease(lease) for _, lease in sorted(snapshot.leases.items())),
    ])
    return body + _U32.pack(zlib.crc32(body))


def _encode_lease(lease: Lease) -> bytes:
    keys = sorted(lease.keys)
    return _LEASE.pack(lease.lease_id, lease.ttl_ms, lease.deadline_ms, len(keys)) + \
        b"".join(_U32.pack(len(key)) + key for key in keys)


@dataclass(frozen=True, slots=True)
class Image:
    index: int
    items: list[tuple[bytes, bytes]]  # in key order
    requests: dict[bytes, Result]
    containers: dict[bytes, Container]
    scripts: dict[bytes, bytes]  # SHA1 -> body
    leases: dict[int, Lease]

    def restore(self, state_machine: StateMachine) -> None:
        state_machine.restore_parts(self.index, self.items, self.requests, self.containers,
                                    self.scripts, self.leases)


def decode(data: bytes, where: str) -> Image:
    """Parse and verify an image; CorruptionError names ``where`` on any damage."""
    if len(data) < _HEAD.size + 4 or data[:8] not in (MAGIC, MAGIC_3, MAGIC_2, MAGIC_1):
        raise CorruptionError(f"{where}: not a raftkv state-machine image (bad magic or "
                              f"too short)")
    (crc,) = _U32.unpack_from(data, len(data) - 4)
    if zlib.crc32(memoryview(data)[:-4]) != crc:
        raise CorruptionError(f"{where}: image checksum mismatch")
    try:
        _, index, _term, count, nreq = _HEAD.unpack_from(data)
        pos = _HEAD.size
        lengths = array("I")
        lengths.frombytes(data[pos : pos + 8 * count])
        pos += 8 * count
        items: list[tuple[bytes, bytes]] = []
        append = items.append
        it = iter(lengths)
        for klen, plen in zip(it, it, strict=True):
            kend = pos + klen
            pend = kend + plen
            append((data[pos:kend], data[kend:pend]))
            pos = pend
        requests: dict[bytes, Result] = {}
        for _ in range(nreq):
            (rlen,) = _U32.unpack_from(data, pos)
            rid = data[pos + 4 : pos + 4 + rlen]
            pos += 4 + rlen
            (elen,) = _U32.unpack_from(data, pos)
            requests[rid] = decode_result(data[pos + 4 : pos + 4 + elen])
            pos += 4 + elen
        containers: dict[bytes, Container] = {}
        scripts: dict[bytes, bytes] = {}
        leases: dict[int, Lease] = {}
        if data[:8] != MAGIC_1:
            (count,) = _U64.unpack_from(data, pos)
            r = BinaryReader(data[: len(data) - 4], ValueError)
            r.pos = pos + 8
            for _ in range(count):
                key = r.blob()
                inner = BinaryReader(r.blob(), ValueError)
                containers[key] = decode_container(inner, 0)
                if not inner.at_end:
                    raise ValueError("trailing bytes after a container")
            if data[:8] in (MAGIC, MAGIC_3):
                (count,) = r.fixed(_U32)
                for _ in range(count):
                    body = r.blob()
                    scripts[sha1hex(body)] = body
            if data[:8] == MAGIC:
                (count,) = r.fixed(_U32)
                for _ in range(count):
                    lease_id, ttl_ms, deadline_ms, nkeys = r.fixed(_LEASE)
                    leases[lease_id] = Lease(lease_id, ttl_ms, deadline_ms,
                                             {r.blob() for _ in range(nkeys)})
            pos = r.pos
    except (struct.error, ValueError) as exc:
        raise CorruptionError(f"{where}: malformed image ({exc})") from exc
    if pos != len(data) - 4:
        raise CorruptionError(f"{where}: malformed image (length mismatch)")
    return Image(index, items, requests, containers, scripts, leases)
