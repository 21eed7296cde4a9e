"""Raft's data: messages and the Ready batch a driver acts on. Log entries, the hard
state and snapshots are what the log store keeps, defined there (``storage/``).

Section numbers refer to the Raft paper ("In Search of an Understandable Consensus
Algorithm", extended version) and to Ongaro's dissertation (``§D``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from raftkv.storage.log_store import EntryKind, HardState, LogEntry
from raftkv.storage.snapshots import Snapshot

__all__ = ["EntryKind", "HardState", "LogEntry", "Message", "MsgType", "ReadState", "Ready",
           "Snapshot", "SoftState", "decode_conf", "encode_conf"]


class MsgType(enum.IntEnum):
    PRE_VOTE = 0  # §D 9.6: would you vote for me? (no term change)
    PRE_VOTE_RESP = 1
    VOTE = 2  # RequestVote (§5.2)
    VOTE_RESP = 3
    APPEND = 4  # AppendEntries (§5.3)
    APPEND_RESP = 5
    HEARTBEAT = 6  # empty AppendEntries carrying commit and a ReadIndex context
    HEARTBEAT_RESP = 7
    READ_INDEX = 8  # follower -> leader: confirm a read for me (§D 6.4)
    READ_INDEX_RESP = 9
    TIMEOUT_NOW = 10  # leadership transfer: start an election now (§D 3.10)
    SNAPSHOT = 11  # InstallSnapshot, one chunk per message (§7)


@dataclass(frozen=True, slots=True)
class Message:
    type: MsgType
    frm: str
    to: str
    term: int
    log_term: int = 0  # APPEND: term at ``index``; votes: last log term
    index: int = 0  # APPEND: previous index; responses: last index matched
    entries: tuple[LogEntry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0  # a rejected APPEND: the follower's guess of a matching index
    context: bytes = b""  # ReadIndex request id, or b"transfer" on a forced vote
    data: bytes = b""  # SNAPSHOT: this chunk
    chunk_offset: int = 0  # SNAPSHOT: where the chunk starts in the snapshot
    last_chunk: bool = False


@dataclass(frozen=True, slots=True)
class SoftState:
    role: str
    leader: str | None


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once ``index`` is applied (§D 6.4)."""

    index: int
    context: bytes


@dataclass
class Ready:
    """One batch of work for the driver, in this order: persist ``snapshot`` (drop the
    log entries it covers, and every entry if the log does not hold the snapshot's
    last entry with its term) and restore the state machine from it; persist
    ``hard_state`` and ``entries`` (which replace the log from ``entries[0].index``);
    then send ``messages``; then apply ``committed``; then call ``advance``."""

    snapshot: Snapshot | None = None
    hard_state: HardState | None = None
    entries: list[LogEntry] = field(default_factory=list)
    committed: list[LogEntry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    soft_state: SoftState | None = None


def encode_conf(voters: tuple[str, ...], learners: tuple[str, ...]) -> bytes:
    return b"v=%s;l=%s" % (",".join(voters).encode(), ",".join(learners).encode())


def decode_conf(data: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    voters, _, learners = data.decode().partition(";")
    return (tuple(x for x in voters[2:].split(",") if x),
            tuple(x for x in learners[2:].split(",") if x))
