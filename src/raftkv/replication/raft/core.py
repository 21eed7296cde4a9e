"""The Raft consensus core: a synchronous state machine with no I/O, clock or asyncio.

The driver calls ``tick()`` on a timer, ``step(message)`` for every message that
arrives, ``propose(data)`` and ``read_index(context)`` for clients, then drains
``ready()`` - persisting, sending, applying, in that order - and calls
``advance(ready)``. Everything a Ready asks to send is sent only after that Ready's
state is durable, so a vote or an acknowledgement never outruns the disk (§5.1).

Implemented, with the rule's source:

* leader election with randomized timeouts (§5.2), the election restriction
  (§5.4.1), pre-vote so a partitioned node cannot disrupt the cluster (§D 9.6), and
  check-quorum: a leader that has not heard from a majority for an election timeout
  steps down, and followers ignore votes while they have a live leader (§D 6.2);
* log replication with the log-matching check, truncation only on a term conflict
  (§5.3), fast backtracking of ``next`` on rejection (§5.3, end), pipelining with a
  cap on in-flight messages per follower, and commit of current-term entries only by
  counting replicas (§5.4.2), helped by a no-op at the start of each term (§8);
* ReadIndex linearizable reads with one heartbeat round and no log write (§D 6.4),
  including reads forwarded by followers;
* leadership transfer (§D 3.10);
* faster failure detection by other means (§D 6.1 hints at it): when the transport
  loses every link to a follower's leader, the follower forgets that leader and
  campaigns within a few ticks instead of a whole election timeout. Pre-vote keeps
  this harmless when only that link failed: the others still hear the leader and
  refuse;
* log compaction by the state machine's snapshot, and InstallSnapshot in chunks to a
  follower whose next entry was compacted away (§7).

* single-server membership changes (§D 4.1): a node joins as a learner (it gets the
  log but neither votes nor counts), is promoted to voter once caught up, or is
  removed. A leader changes membership only after committing an entry of its own
  term, and one change at a time (the fix Ongaro posted to raft-dev in 2015). The
  configuration in force is the latest in the log, committed or not (§D 4.1).

``bugs`` holds planted defects for the simulator's negative controls; production
never sets it.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from raftkv.replication.raft.messages import (
    EntryKind,
    HardState,
    LogEntry,
    Message,
    MsgType,
    ReadState,
    Ready,
    Snapshot,
    SoftState,
    decode_conf,
    encode_conf,
)


class Role(enum.StrEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"

MAX_ENTRIES_PER_APPEND = 64
MAX_INFLIGHT_APPENDS = 32
MAX_INFLIGHT_BYTES = 1024 * 1024  # flow control: unacknowledged entry bytes per follower
MAX_APPEND_BYTES = 256 * 1024
TRANSFER = b"transfer"
SNAPSHOT_CHUNK_BYTES = 64 * 1024
EMPTY_HARD_STATE = HardState()

# Negative controls the simulator must catch.
BUG_COMMIT_PREVIOUS_TERM = "commit_previous_term"  # commit old-term entries by counting
BUG_TRUNCATE_WITHOUT_CONFLICT = "truncate_without_conflict"
BUG_READ_WITHOUT_HEARTBEAT = "read_without_heartbeat"


@dataclass(frozen=True, slots=True)
class Status:
    """The core as its driver, the replicator and operators see it (etcd's
    ``raft.Status``): a copy, so nothing outside reads or writes the core's fields."""

    id: str
    role: Role
    term: int
    leader: str | None
    commit: int
    last_index: int
    offset: int  # the index the log was compacted to (0: never)
    voters: tuple[str, ...]
    learners: tuple[str, ...]
    match: dict[str, int]  # on the leader: each other member's match index; else empty

    @property
    def member(self) -> bool:
        return self.id in self.voters or self.id in self.learners


class ConfChangeRefused(Exception):
    """Raised by ``propose_conf_change`` when the change is not allowed; ``retry`` says
    it may be allowed shortly (another change or the term's first commit pending)."""

    def __init__(self, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class NotLeaderError(Exception):
    """Raised by ``propose`` on a node that is not the leader (``leader`` is a hint)."""

    def __init__(self, leader: str | None) -> None:
        super().__init__(f"not the leader (leader: {leader})")
        self.leader = leader


@dataclass
class Progress:
    """The leader's view of one follower (§5.3: nextIndex and matchIndex)."""

    match: int = 0
    next: int = 1
    probing: bool = True  # until a follower accepts, send one append at a time
    # (last index, entry bytes) of each unacknowledged append, oldest first
    inflight: deque[tuple[int, int]] = field(default_factory=deque)
    inflight_bytes: int = 0
    snapshot_sent: int = 0  # index of a snapshot in flight to this follower (0: none)
    heard_last: int = -1  # the follower's last index in its previous heartbeat response
    recent_active: bool = False  # heard from since the last check-quorum round

    def sent(self, last_index: int, size: int) -> None:
        self.inflight.append((last_index, size))
        self.inflight_bytes += size

    def acknowledged(self, index: int) -> None:
        while self.inflight and self.inflight[0][0] <= index:
            self.inflight_bytes -= self.inflight.popleft()[1]

    def forget_inflight(self) -> None:
        self.inflight.clear()
        self.inflight_bytes = 0


@dataclass
class PendingRead:
    index: int
    context: bytes  # the requester's
    requester: str
    acks: set[str]
    round: bytes  # the heartbeat round that confirms it


class RaftCore:
    def __init__(self, node_id: str, voters: Sequence[str], rng: random.Random,
                 hard_state: HardState = EMPTY_HARD_STATE, log: Iterable[LogEntry] = (),
                 snapshot: Snapshot | None = None, applied: int | None = None,
                 election_ticks: int = 10,
                 heartbeat_ticks: int = 2, max_entries_per_append: int = MAX_ENTRIES_PER_APPEND,
                 bugs: frozenset[str] = frozenset()) -> None:
        self.id = node_id  # need not be a voter: a joining node starts outside the config
        self.voters: tuple[str, ...] = tuple(sorted(voters))
        self.learners: tuple[str, ...] = ()
        self.rng = rng
        self.election_ticks = election_ticks
        self.heartbeat_ticks = heartbeat_ticks
        self.max_entries_per_append = max_entries_per_append
        self.bugs = bugs
        self.term = hard_state.term
        self.vote = hard_state.vote
        self.role: Role = Role.FOLLOWER
        self.progress: dict[str, Progress] = {}
        # log[0] stands for the last compacted entry (the snapshot's index and term);
        # entry i lives at log[i - offset].
        self.snapshot = snapshot or Snapshot(0, 0, b"")
        self.offset = self.snapshot.index
        self.log: list[LogEntry] = [LogEntry(self.snapshot.term, self.offset)]
        self.log.extend(e for e in log if e.index > self.offset)
        if self.snapshot.voters:
            self._base_conf = (self.snapshot.voters, self.snapshot.learners)
        else:
            self._base_conf = (self.voters, ())
        self._refresh_config()
        # A commit index past the log means the log lost its tail (fsync off, or a
        # damaged disk): only what is here can be applied.
        self.commit = max(min(hard_state.commit, self.last_index), self.offset)
        # What the state machine already holds (from a snapshot or its own replay).
        self.applied = max(self.offset, hard_state.commit if applied is None else applied)
        self.leader: str | None = None
        self.votes: dict[str, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self._new_timeout()
        self.pending_reads: list[PendingRead] = []
        # Heartbeat rounds for reads are numbered, never reused: an ack matched by the
        # requester's context alone could come from an earlier round (a duplicated read
        # request) and confirm a read it never saw.
        self.read_rounds = 0
        self.waiting_reads: list[tuple[bytes, str]] = []  # before the term's first commit
        self.transfer_to: str | None = None
        self._leased_pre_vote: Message | None = None  # the last one the lease ignored
        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        self._unstable_from = self.last_index + 1  # first index not yet handed out to persist
        self._pending_snapshot: Snapshot | None = None  # installed, not yet handed out
        self._incoming = bytearray()  # chunks of a snapshot being received
        self._hard_state = hard_state
        self._soft_state = SoftState(self.role, self.leader)
        self._next_read = 0

    # --- the log -------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return self.offset + len(self.log) - 1

    def term_at(self, index: int) -> int:
        """The term of entry ``index``; -1 when it is past the end or compacted away."""
        position = index - self.offset
        return self.log[position].term if 0 <= position < len(self.log) else -1

    def entry(self, index: int) -> LogEntry:
        return self.log[index - self.offset]

    def entries(self, lo: int, hi: int) -> list[LogEntry]:
        """Entries ``lo`` to ``hi - 1`` (all still in the log)."""
        return self.log[lo - self.offset: hi - self.offset]

    def _up_to_date(self, last_term: int, last_index: int) -> bool:
        """§5.4.1: a candidate's log is at least as up to date as ours."""
        ours = self.log[-1].term
        return last_term > ours or (last_term == ours and last_index >= self.last_index)

    def _truncate_and_append(self, entries: Sequence[LogEntry]) -> None:
        if entries and entries[0].index == self.last_index + 1:  # the common case: new ones
            self.log.extend(entries)
            self._unstable_from = min(self._unstable_from, entries[0].index)
            if any(e.kind is EntryKind.CONF for e in entries):
                self._refresh_config()
            return
        for entry in entries:
            if entry.index <= self.offset:
                continue  # already in our snapshot, so committed and equal
            if entry.index <= self.last_index:
                conflict = self.term_at(entry.index) != entry.term
                if not conflict and BUG_TRUNCATE_WITHOUT_CONFLICT not in self.bugs:
                    continue  # §5.3: an entry we already have is kept as it is
                if entry.index <= self.commit:
                    raise AssertionError(f"{self.id}: truncating committed entry {entry.index}")
                del self.log[entry.index - self.offset:]
            self.log.append(entry)
            self._unstable_from = min(self._unstable_from, entry.index)
        if any(e.kind is EntryKind.CONF for e in entries) or self._conf_index > self.last_index:
            self._refresh_config()

    # --- membership (§D 4.1) -----------------------------------------------------------

    def _conf_at(self, index: int) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
        """(index of the entry, voters, learners) of the configuration in force at ``index``."""
        for position in range(index - self.offset, 0, -1):
            entry = self.log[position]
            if entry.kind is EntryKind.CONF:
                return (entry.index, *decode_conf(entry.data))
        return (self.offset, *self._base_conf)

    def _refresh_config(self) -> None:
        self._conf_index, voters, learners = self._conf_at(self.last_index)
        self.voters, self.learners = voters, learners
        if self.role == Role.LEADER:
            members = set(voters) | set(learners)
            for node in members - set(self.progress):
                self.progress[node] = Progress(next=self.last_index + 1)
            for node in set(self.progress) - members - {self.id}:
                del self.progress[node]

    @property
    def quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def propose_conf_change(self, change: str, node: str) -> int:
        """``change`` is ``add-learner``, ``promote`` or ``remove``; returns the index."""
        if self.role != Role.LEADER or self.transfer_to is not None:
            raise NotLeaderError(self.leader if self.role != Role.LEADER else None)
        if self.term_at(self.commit) != self.term:
            raise ConfChangeRefused("no entry of this term is committed yet", retry=True)
        if self._conf_index > self.commit:
            raise ConfChangeRefused("another membership change is in progress", retry=True)
        voters, learners = set(self.voters), set(self.learners)
        if change == "add-learner" and node not in voters | learners:
            learners.add(node)
        elif change == "promote" and node in learners:
            learners.discard(node)
            voters.add(node)
        elif change == "remove" and node in voters | learners and voters - {node}:
            voters.discard(node)
            learners.discard(node)
        else:
            raise ConfChangeRefused(f"cannot {change} {node} in voters={sorted(voters)} "
                                    f"learners={sorted(learners)}")
        data = encode_conf(tuple(sorted(voters)), tuple(sorted(learners)))
        entry = LogEntry(self.term, self.last_index + 1, data, EntryKind.CONF)
        self._append_as_leader([entry])
        return entry.index

    # --- inputs ----------------------------------------------------------------------

    def status(self) -> Status:
        match = ({node: p.match for node, p in self.progress.items() if node != self.id}
                 if self.role == Role.LEADER else {})
        return Status(self.id, self.role, self.term, self.leader, self.commit, self.last_index,
                      self.offset, self.voters, self.learners, match)

    def tick(self) -> None:
        if self.role == Role.LEADER:
            self.heartbeat_elapsed += 1
            self.election_elapsed += 1
            if self.election_elapsed >= self.election_ticks:
                self.election_elapsed = 0
                self._check_quorum()
                if self.role != Role.LEADER:
                    return
                self.transfer_to = None  # a transfer that did not finish in time is off
            if self.heartbeat_elapsed >= self.heartbeat_ticks:
                self.heartbeat_elapsed = 0
                self._broadcast_heartbeat(b"")
            return
        self.election_elapsed += 1
        if self.election_elapsed >= self.randomized_timeout:
            if self.id in self.voters:  # learners and removed nodes never campaign
                self.campaign(pre_vote=True)
            else:
                self.election_elapsed = 0

    def peer_unreachable(self, node: str) -> None:
        """The transport lost every link to ``node`` (e.g. its process died)."""
        if self.role != Role.FOLLOWER or self.leader != node or self.id not in self.voters:
            return
        self.leader = None  # no lease to honour: candidates may get our vote
        held, self._leased_pre_vote = self._leased_pre_vote, None
        if held is not None and held.frm != node:
            # A survivor saw the links close first and asked already; answer it now.
            self.step(held)
        # The survivors take turns in the order of their ids, so they do not split the
        # vote: the first campaigns (pre-vote first) at once, the next two ticks later in
        # case the first cannot win (its log is behind, or it is gone too), and so on. Two:
        # a next tick may come within the first one's election.
        turn = sorted(v for v in self.voters if v != node).index(self.id)
        if turn == 0:
            self.campaign(pre_vote=True)
            # no answer by the next tick (a link was down too, say): ask again then
            self.election_elapsed = self.randomized_timeout - 1
        else:
            self.election_elapsed = max(self.election_elapsed,
                                        self.randomized_timeout - 2 * turn)

    def bootstrap(self, voters: Sequence[str]) -> bool:
        """Start a new cluster: entry 1 (term 1) is the initial configuration, committed
        by construction because every founding node writes the same one (etcd does the
        same). False, and nothing changes, when this node already has any state."""
        if self.term or self.last_index or self.vote is not None:
            return False
        self.term = 1
        self.log.append(LogEntry(1, 1, encode_conf(tuple(sorted(voters)), ()), EntryKind.CONF))
        self.commit = 1
        self._refresh_config()
        return True

    def propose(self, data: bytes) -> int:
        """Append ``data`` to the log; returns its index (not yet committed)."""
        return self.propose_batch([data])[0]

    def propose_batch(self, items: Sequence[bytes]) -> list[int]:
        """Append several commands at once (one append per follower for the lot)."""
        if self.role != Role.LEADER or self.transfer_to is not None:
            raise NotLeaderError(self.leader if self.role != Role.LEADER else None)
        first = self.last_index + 1
        self._append_as_leader([LogEntry(self.term, first + i, data)
                                for i, data in enumerate(items)])
        return list(range(first, first + len(items)))

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read; a ReadState with ``context`` comes out of a later
        Ready (on a follower, once the leader confirmed it). Raises NotLeaderError when
        no leader is known."""
        if self.role == Role.LEADER:
            self._leader_read(context, self.id)
        elif self.leader is not None:
            self._send(Message(MsgType.READ_INDEX, self.id, self.leader, self.term,
                               context=context))
        else:
            raise NotLeaderError(None)

    def transfer_leadership(self, to: str) -> None:
        """§D 3.10: stop taking proposals, bring ``to`` up to date, tell it to campaign."""
        if self.role != Role.LEADER or to == self.id or to not in self.progress:
            return
        self.transfer_to = to
        self.election_elapsed = 0
        if self.progress[to].match == self.last_index:
            self._send(Message(MsgType.TIMEOUT_NOW, self.id, to, self.term))
        else:
            self._send_append(to)

    def step(self, m: Message) -> None:
        if m.term > self.term:
            if m.type in (MsgType.PRE_VOTE, MsgType.VOTE):
                in_lease = self.leader is not None and self.election_elapsed < self.election_ticks
                if in_lease and m.context != TRANSFER:
                    if m.type == MsgType.PRE_VOTE:
                        self._leased_pre_vote = m
                    return  # §D 6.2: a live leader exists; ignore the disruptor
            if m.type == MsgType.PRE_VOTE:
                pass  # a pre-vote never changes our term
            elif m.type == MsgType.PRE_VOTE_RESP and not m.reject:
                pass  # granted pre-votes carry the term we would campaign in
            else:
                leader = m.frm if m.type in (MsgType.APPEND, MsgType.HEARTBEAT,
                                             MsgType.SNAPSHOT) else None
                self._become_follower(m.term, leader)
        elif m.term < self.term:
            if m.type in (MsgType.APPEND, MsgType.HEARTBEAT, MsgType.SNAPSHOT):
                # A stale leader: tell it our term so it steps down.
                self._send(Message(MsgType.APPEND_RESP, self.id, m.frm, self.term, reject=True))
            elif m.type == MsgType.PRE_VOTE:
                self._send(Message(MsgType.PRE_VOTE_RESP, self.id, m.frm, self.term, reject=True))
            return
        handler = {
            MsgType.PRE_VOTE: self._on_vote_request, MsgType.VOTE: self._on_vote_request,
            MsgType.PRE_VOTE_RESP: self._on_vote_response,
            MsgType.VOTE_RESP: self._on_vote_response,
            MsgType.APPEND: self._on_append, MsgType.HEARTBEAT: self._on_heartbeat,
            MsgType.APPEND_RESP: self._on_append_response,
            MsgType.HEARTBEAT_RESP: self._on_heartbeat_response,
            MsgType.READ_INDEX: self._on_read_index,
            MsgType.READ_INDEX_RESP: self._on_read_index_response,
            MsgType.TIMEOUT_NOW: self._on_timeout_now,
            MsgType.SNAPSHOT: self._on_snapshot,
        }[m.type]
        handler(m)

    # --- elections (§5.2) ------------------------------------------------------------

    def _new_timeout(self) -> int:
        return self.election_ticks + self.rng.randrange(self.election_ticks)

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
        self.leader = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self._new_timeout()
        self.votes = {}
        self.transfer_to = None
        self.pending_reads = []
        self.waiting_reads = []

    def _become_follower(self, term: int, leader: str | None) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader

    def campaign(self, pre_vote: bool, transfer: bool = False) -> None:
        if pre_vote:
            self._reset(self.term)
            self.role = Role.PRE_CANDIDATE
            term, kind = self.term + 1, MsgType.PRE_VOTE
        else:
            self._reset(self.term + 1)
            self.role = Role.CANDIDATE
            self.vote = self.id
            term, kind = self.term, MsgType.VOTE
        self.votes[self.id] = True
        if self._won():
            self._after_votes()
            return
        for peer in self.voters:
            if peer != self.id:
                self._send(Message(kind, self.id, peer, term, log_term=self.log[-1].term,
                                   index=self.last_index, context=TRANSFER if transfer else b""))

    def _on_vote_request(self, m: Message) -> None:
        pre = m.type == MsgType.PRE_VOTE
        can_vote = (self.vote == m.frm or (self.vote is None and self.leader is None)
                    or (pre and m.term > self.term))
        grant = can_vote and self._up_to_date(m.log_term, m.index)
        kind = MsgType.PRE_VOTE_RESP if pre else MsgType.VOTE_RESP
        if grant and not pre:
            self.vote = m.frm
            self.election_elapsed = 0
        self._send(Message(kind, self.id, m.frm, m.term if grant else self.term,
                           reject=not grant))

    def _on_vote_response(self, m: Message) -> None:
        expected = Role.PRE_CANDIDATE if m.type == MsgType.PRE_VOTE_RESP else Role.CANDIDATE
        if self.role != expected:
            return
        self.votes[m.frm] = not m.reject
        self._after_votes()

    def _won(self) -> bool:
        return sum(1 for n, granted in self.votes.items() if granted and n in self.voters
                   ) >= self.quorum

    def _after_votes(self) -> None:
        if self._won():
            if self.role == Role.PRE_CANDIDATE:
                self.campaign(pre_vote=False)
            else:
                self._become_leader()
        elif sum(1 for n, granted in self.votes.items()
                 if not granted and n in self.voters) > len(self.voters) - self.quorum:
            self._become_follower(self.term, None)

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader = self.id
        self.progress = {p: Progress(next=self.last_index + 1)
                         for p in (*self.voters, *self.learners, self.id)}
        self.progress[self.id].match = self.last_index
        # §8: a no-op of our own term lets earlier-term entries commit by counting.
        self._append_as_leader([LogEntry(self.term, self.last_index + 1, b"", EntryKind.NOOP)])

    def _on_timeout_now(self, m: Message) -> None:
        if self.role != Role.LEADER:
            self.campaign(pre_vote=False, transfer=True)

    def _check_quorum(self) -> None:
        """§D 6.2: a leader that cannot reach a majority steps down."""
        active = sum(1 for p, pr in self.progress.items()
                     if p in self.voters and (p == self.id or pr.recent_active))
        for pr in self.progress.values():
            pr.recent_active = False
            pr.snapshot_sent = 0  # a snapshot unanswered for a whole round is sent again
        if active < self.quorum:
            self._become_follower(self.term, None)

    # --- replication (§5.3) ------------------------------------------------------------

    def _append_as_leader(self, entries: list[LogEntry]) -> None:
        self._truncate_and_append(entries)
        self.progress[self.id].match = self.last_index
        self.progress[self.id].next = self.last_index + 1
        self._maybe_commit()
        for peer in self.progress:
            if peer != self.id:
                self._send_append(peer)

    def _send_append(self, peer: str) -> None:
        pr = self.progress[peer]
        if (len(pr.inflight) >= MAX_INFLIGHT_APPENDS or pr.inflight_bytes >= MAX_INFLIGHT_BYTES
                or (pr.probing and pr.inflight)):
            return  # flow control: wait for acknowledgements
        prev = pr.next - 1
        if prev < self.offset:  # §7: what it needs was compacted away; send the snapshot
            self._send_snapshot(peer)
            return
        batch = self.entries(pr.next, min(pr.next + self.max_entries_per_append,
                                          self.last_index + 1))
        size = 0
        for count, entry in enumerate(batch):
            size += len(entry.data)
            if size > MAX_APPEND_BYTES and count:
                size -= len(entry.data)
                batch = batch[:count]
                break
        entries = tuple(batch)
        self._send(Message(MsgType.APPEND, self.id, peer, self.term, log_term=self.term_at(prev),
                           index=prev, entries=entries, commit=self.commit))
        if entries:
            pr.sent(entries[-1].index, size)
            if not pr.probing:
                pr.next = entries[-1].index + 1  # pipeline: optimistic next
        elif pr.probing:
            pr.sent(prev, 0)

    def _on_append(self, m: Message) -> None:
        self.election_elapsed = 0
        self.leader = m.frm
        if self.role != Role.FOLLOWER:
            self._become_follower(self.term, m.frm)
        if m.index < self.commit:
            self._send(Message(MsgType.APPEND_RESP, self.id, m.frm, self.term, index=self.commit))
            return
        if self.term_at(m.index) != m.log_term:
            hint = min(m.index, self.last_index)
            if hint == m.index:  # skip back over the whole conflicting term
                conflict_term = self.term_at(hint)
                while hint > self.commit and self.term_at(hint - 1) == conflict_term:
                    hint -= 1
                hint -= 1
            self._send(Message(MsgType.APPEND_RESP, self.id, m.frm, self.term, index=m.index,
                               reject=True, reject_hint=max(hint, 0)))
            return
        self._truncate_and_append(m.entries)
        last_new = m.index + len(m.entries)
        self.commit = max(self.commit, min(m.commit, last_new))
        self._send(Message(MsgType.APPEND_RESP, self.id, m.frm, self.term, index=last_new))

    def _send_snapshot(self, peer: str) -> None:
        """Stream the snapshot in chunks; the follower answers once, after the last."""
        pr = self.progress[peer]
        if pr.snapshot_sent == self.snapshot.index:
            return  # already on its way; a rejection or a heartbeat restarts it
        snap = self.snapshot
        pr.snapshot_sent = snap.index
        pr.probing = True
        pr.forget_inflight()
        pr.sent(snap.index, 0)
        data = snap.data
        for start in range(0, max(len(data), 1), SNAPSHOT_CHUNK_BYTES):
            chunk = data[start: start + SNAPSHOT_CHUNK_BYTES]
            last = start + SNAPSHOT_CHUNK_BYTES >= len(data)
            self._send(Message(MsgType.SNAPSHOT, self.id, peer, self.term, log_term=snap.term,
                               index=snap.index, data=chunk, chunk_offset=start,
                               last_chunk=last,
                               context=encode_conf(snap.voters, snap.learners) if last else b""))

    def _on_snapshot(self, m: Message) -> None:
        self.election_elapsed = 0
        self.leader = m.frm
        if self.role != Role.FOLLOWER:
            self._become_follower(self.term, m.frm)
        if m.chunk_offset == 0:
            self._incoming = bytearray()
        if m.chunk_offset != len(self._incoming):  # a lost or reordered chunk: start over
            self._incoming = bytearray()
            self._send(Message(MsgType.APPEND_RESP, self.id, m.frm, self.term, index=m.index,
                               reject=True, reject_hint=self.last_index))
            return
        self._incoming += m.data
        if not m.last_chunk:
            return
        voters, learners = decode_conf(m.context)
        snap = Snapshot(m.index, m.log_term, bytes(self._incoming), voters, learners)
        self._incoming = bytearray()
        self._install(snap)
        self._send(Message(MsgType.APPEND_RESP, self.id, m.frm, self.term,
                           index=max(self.commit, snap.index)))

    def _install(self, snap: Snapshot) -> None:
        if snap.index <= self.commit:
            return  # we already have everything it holds
        if self.term_at(snap.index) == snap.term:
            # Our log matches it: keep the suffix, drop the prefix (§7).
            self.log = self.log[snap.index - self.offset:]
        else:
            self.log = [LogEntry(snap.term, snap.index)]
            self._unstable_from = snap.index + 1
        self.log[0] = LogEntry(snap.term, snap.index)
        self.offset = snap.index
        # Entries the snapshot covers need no persisting of their own: it is persisted.
        self._unstable_from = max(self._unstable_from, snap.index + 1)
        self.snapshot = snap
        if snap.voters:
            self._base_conf = (snap.voters, snap.learners)
        self._refresh_config()
        self.commit = snap.index
        self.applied = snap.index
        self._pending_snapshot = snap

    def compact(self, index: int, data: bytes) -> None:
        """The driver snapshotted the state machine at applied ``index``: drop the log
        up to it (§7). ``data`` is what a lagging follower will be sent."""
        if index <= self.offset or index > self.applied:
            return
        term = self.term_at(index)
        _, voters, learners = self._conf_at(index)
        self._base_conf = (voters, learners)
        self.log = self.log[index - self.offset:]
        self.log[0] = LogEntry(term, index)
        self.offset = index
        self.snapshot = Snapshot(index, term, data, voters, learners)

    def _on_append_response(self, m: Message) -> None:
        pr = self.progress.get(m.frm)
        if self.role != Role.LEADER or pr is None:  # pr is None: no longer a member
            return
        pr.recent_active = True
        pr.snapshot_sent = 0
        if m.reject:
            if pr.probing:
                if m.index != pr.next - 1:
                    return  # a stale rejection: not of the append we are waiting for
                pr.next = max(pr.match + 1, min(m.index, m.reject_hint + 1))
            else:
                if m.index <= pr.match:
                    return  # a stale rejection of an earlier pipelined append
                pr.next = pr.match + 1
                pr.probing = True
            pr.forget_inflight()
            self._send_append(m.frm)
            return
        if m.index > pr.match:
            pr.match = m.index
        if pr.next <= m.index:
            pr.next = m.index + 1
        pr.probing = False
        pr.acknowledged(m.index)
        if self._maybe_commit():
            for peer in self.progress:
                if peer != self.id:
                    self._send_append(peer)
        elif pr.next <= self.last_index:
            self._send_append(m.frm)
        if self.transfer_to == m.frm and pr.match == self.last_index:
            self._send(Message(MsgType.TIMEOUT_NOW, self.id, m.frm, self.term))

    def _maybe_commit(self) -> bool:
        matches = sorted((self.progress[v].match for v in self.voters if v in self.progress),
                         reverse=True)
        if len(matches) < self.quorum:
            return False
        candidate = matches[self.quorum - 1]
        if candidate <= self.commit:
            return False
        # §5.4.2: only entries of the current term are committed by counting replicas.
        if self.term_at(candidate) != self.term and BUG_COMMIT_PREVIOUS_TERM not in self.bugs:
            return False
        self.commit = candidate
        if self.id not in self.voters and self._conf_index <= self.commit:
            # §D 4.2.2: a leader removed from the configuration steps down once the
            # change is committed (it keeps replicating until then).
            self._become_follower(self.term, None)
            return True
        self._release_waiting_reads()
        return True

    # --- heartbeats and ReadIndex (§D 6.4) -----------------------------------------------

    def _broadcast_heartbeat(self, context: bytes) -> None:
        for peer in self.progress:
            if peer != self.id:
                pr = self.progress[peer]
                self._send(Message(MsgType.HEARTBEAT, self.id, peer, self.term,
                                   commit=min(pr.match, self.commit), context=context))

    def _on_heartbeat(self, m: Message) -> None:
        self.election_elapsed = 0
        self.leader = m.frm
        if self.role != Role.FOLLOWER:
            self._become_follower(self.term, m.frm)
        if m.commit > self.commit:
            self.commit = min(m.commit, self.last_index)
        self._send(Message(MsgType.HEARTBEAT_RESP, self.id, m.frm, self.term,
                           index=self.last_index, context=m.context))

    def _on_heartbeat_response(self, m: Message) -> None:
        pr = self.progress.get(m.frm)
        if self.role != Role.LEADER or pr is None:  # pr is None: no longer a member
            return
        pr.recent_active = True
        if pr.match < self.last_index:
            stalled = m.index == pr.heard_last  # no progress over a heartbeat interval
            if pr.probing or not pr.inflight or stalled:
                # Appends were lost (or nothing is in flight): resend from what it has.
                pr.next = max(pr.match + 1, min(pr.next, m.index + 1))
                pr.probing = True
                pr.forget_inflight()
                self._send_append(m.frm)
        pr.heard_last = m.index
        if not m.context:
            return
        for read in self.pending_reads:
            if read.round == m.context and m.frm in self.voters:
                read.acks.add(m.frm)
        self._release_confirmed_reads()

    def _leader_read(self, context: bytes, requester: str) -> None:
        if self.term_at(self.commit) != self.term:
            # §D 6.4 step 1: until an entry of this term commits, our commit index may be
            # behind what earlier leaders committed.
            self.waiting_reads.append((context, requester))
            return
        self.read_rounds += 1
        read = PendingRead(self.commit, context, requester, {self.id},
                           self.read_rounds.to_bytes(8, "big"))
        if BUG_READ_WITHOUT_HEARTBEAT in self.bugs or self.voters == (self.id,):
            self._finish_read(read)
            return
        self.pending_reads.append(read)
        self._broadcast_heartbeat(read.round)

    def _release_waiting_reads(self) -> None:
        if self.waiting_reads and self.term_at(self.commit) == self.term:
            waiting, self.waiting_reads = self.waiting_reads, []
            for context, requester in waiting:
                self._leader_read(context, requester)

    def _release_confirmed_reads(self) -> None:
        # Reads are confirmed in order: a later heartbeat round confirms earlier reads too.
        quorum = self.quorum
        for position in range(len(self.pending_reads) - 1, -1, -1):
            if len(self.pending_reads[position].acks) >= quorum:
                done = self.pending_reads[: position + 1]
                self.pending_reads = self.pending_reads[position + 1:]
                for read in done:
                    self._finish_read(read)
                return

    def _finish_read(self, read: PendingRead) -> None:
        if read.requester == self.id:
            self._read_states.append(ReadState(read.index, read.context))
        else:
            self._send(Message(MsgType.READ_INDEX_RESP, self.id, read.requester, self.term,
                               index=read.index, context=read.context))

    def _on_read_index(self, m: Message) -> None:
        if self.role == Role.LEADER:
            self._leader_read(m.context, m.frm)

    def _on_read_index_response(self, m: Message) -> None:
        self._read_states.append(ReadState(m.index, m.context))

    # --- output ------------------------------------------------------------------------

    def _send(self, m: Message) -> None:
        self._msgs.append(m)

    def has_ready(self) -> bool:
        return bool(self._msgs or self._read_states or self._unstable_from <= self.last_index
                    or self._pending_snapshot is not None
                    or self.commit > self.applied
                    or HardState(self.term, self.vote, self.commit) != self._hard_state
                    or SoftState(self.role, self.leader) != self._soft_state)

    def ready(self) -> Ready | None:
        if not self.has_ready():
            return None
        rd = Ready(snapshot=self._pending_snapshot)
        self._pending_snapshot = None
        hard = HardState(self.term, self.vote, self.commit)
        if hard != self._hard_state:
            rd.hard_state = hard
        soft = SoftState(self.role, self.leader)
        if soft != self._soft_state:
            rd.soft_state = soft
        if self._unstable_from <= self.last_index:
            rd.entries = self.entries(max(self._unstable_from, self.offset + 1),
                                      self.last_index + 1)
        rd.committed = self.entries(self.applied + 1, self.commit + 1)
        rd.messages, self._msgs = self._msgs, []
        rd.read_states, self._read_states = self._read_states, []
        return rd

    def advance(self, rd: Ready) -> None:
        if rd.hard_state is not None:
            self._hard_state = rd.hard_state
        if rd.soft_state is not None:
            self._soft_state = rd.soft_state
        if rd.entries:
            self._unstable_from = max(self._unstable_from, rd.entries[-1].index + 1)
        if rd.committed:
            self.applied = rd.committed[-1].index
