"""A seeded, deterministic simulator of Raft cores over a hostile fake network.

    python -m tests.support.raftsim --seed 17 --nodes 5 --trace   # replay one seed

Each tick every live node ticks, due messages are delivered (or dropped, delayed,
duplicated, reordered, cut by partitions), clients propose and read, nodes crash
(losing whatever they had not persisted) and restart from their durable state. Every
Ready is handled the way a driver must: persist, then send, then apply.

Checked after every tick (counted in ``checks``):
  * election safety - at most one leader per term, and no node grants two different
    candidates its vote in one term (§5.2);
  * log matching - two logs with the same (index, term) agree on every entry up to it;
  * leader completeness - a new leader holds every entry committed before it;
  * state-machine safety - every node applies the same entry at each index, and an
    entry applied anywhere is never lost or changed;
  * ReadIndex - a read returns an index at least as new as every write acknowledged
    before the read began.
The run ends by healing the network and restarting everyone: a leader must appear and
a new proposal must commit within a bounded number of ticks (liveness).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from dataclasses import dataclass

from raftkv.replication.raft.core import ConfChangeRefused, NotLeaderError, RaftCore, Role
from raftkv.replication.raft.log import MemoryRaftLog
from raftkv.replication.raft.messages import HardState, Message, MsgType, Ready

BUG_VOTE_NOT_PERSISTED = "vote_not_persisted"


class Violation(AssertionError):
    pass


def encode_state(applied: list[bytes]) -> bytes:
    """The simulated state machine (the list of applied commands) as snapshot bytes."""
    return b"".join(len(d).to_bytes(4, "big") + d for d in applied)


def decode_state(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos: pos + 4], "big")
        out.append(data[pos + 4: pos + 4 + n])
        pos += 4 + n
    return out


@dataclass
class Faults:
    """Probabilities: per message (drop, duplicate), per node per tick (crash, restart,
    compact), per Ready (crash_mid_ready), per tick (partition, heal, pause, transfer,
    membership); ``max_delay`` in ticks."""

    drop: float = 0.05
    duplicate: float = 0.03
    max_delay: int = 3
    crash: float = 0.004
    crash_mid_ready: float = 0.012  # per Ready: crash before persisting it (it is lost)
    restart: float = 0.05
    partition: float = 0.01
    heal: float = 0.03
    transfer: float = 0.003
    pause: float = 0.004  # SIGSTOP-like: a node stops for a while, then wakes up
    compact: float = 0.02  # a node snapshots its state machine and compacts its log
    membership: float = 0.01  # the leader adds a learner, promotes it, or removes a node
    blip: float = 0.01  # a node's links to a live peer all close for a moment


STORMY = Faults(drop=0.15, duplicate=0.05, max_delay=4, crash=0.03, crash_mid_ready=0.09,
                restart=0.3, partition=0.03, heal=0.05, transfer=0.01, pause=0.02,
                compact=0.05, membership=0.03, blip=0.03)


class Simulation:
    def __init__(self, seed: int, nodes: int = 3, faults: Faults | None = None,
                 bugs: frozenset[str] = frozenset(), trace: bool = False) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.initial = [f"n{i + 1}" for i in range(nodes)]
        self.ids = [*self.initial, f"n{nodes + 1}"]  # one spare that can join later
        self.faults = faults or Faults()
        self.bugs = bugs
        self.trace_on = trace
        self.trace: list[str] = []
        self.batch = self.rng.choice([1, 2, 4, 64])  # entries per append: small = many acks
        self.durable = {i: MemoryRaftLog() for i in self.ids}
        self.applied: dict[str, list[bytes]] = {i: [] for i in self.ids}
        self.cores: dict[str, RaftCore | None] = {i: self._boot(i) for i in self.ids}
        self.network: list[tuple[int, int, Message]] = []
        # (tick, node, peer): the node's transport reports every link to peer closed
        self.notices: list[tuple[int, str, str]] = []
        self.blocked: set[tuple[str, str]] = set()
        self.paused: dict[str, int] = {}  # node -> tick it wakes up
        self.now = 0
        self.seq = 0
        self.leaders: dict[int, str] = {}
        self.granted: dict[tuple[str, int], str] = {}  # (voter, term) -> candidate
        self.committed: dict[int, bytes] = {}  # index -> data, from any node's applies
        # index -> lowest term of a node seen applying it: at least the term it was
        # committed in, so leaders of later terms must hold it (§5.4, leader completeness)
        self.commit_term: dict[int, int] = {}
        self.acked_index = 0  # highest index whose write a client saw committed
        self.proposals: dict[bytes, int] = {}  # data -> index, awaiting commit
        self.reads: dict[bytes, int] = {}  # context -> acked_index when the read began
        self.checks = 0
        self.conf_changes = 0
        self.snapshots_installed = 0
        self.reads_done = 0
        self.writes_acked = 0

    # --- nodes ------------------------------------------------------------------------

    def _boot(self, node: str) -> RaftCore:
        d = self.durable[node].load()
        snap = d.snapshot
        self.applied[node] = decode_state(snap.data) if snap else []
        return RaftCore(node, self.initial, random.Random(self.rng.random()), d.hard_state,
                        d.entries, snapshot=snap, applied=snap.index if snap else 0,
                        max_entries_per_append=self.batch, bugs=self.bugs)

    def log(self, text: str) -> None:
        if self.trace_on:
            self.trace.append(f"t={self.now} {text}")

    def change_membership(self, core: RaftCore) -> None:
        """While faults go on: add the spare as a learner, promote a caught-up learner,
        or remove someone (never below three voters)."""
        outside = [n for n in self.ids if n not in core.voters and n not in core.learners]
        caught_up = [n for n in core.learners
                     if n in core.progress and core.progress[n].match >= core.commit]
        if caught_up:
            change, node = "promote", caught_up[0]
        elif outside and self.rng.random() < 0.6:
            change, node = "add-learner", outside[0]
        elif len(core.voters) > 3:
            change, node = "remove", self.rng.choice(core.voters)
        else:
            return
        try:
            core.propose_conf_change(change, node)
        except (ConfChangeRefused, NotLeaderError):
            return
        self.conf_changes += 1
        self.log(f"{core.id} proposes {change} {node}")

    def crash(self, node: str) -> None:
        self.cores[node] = None
        self.log(f"{node} crashes")
        for other in self.ids:  # its links close: each survivor notices, some later
            if other != node:
                self.notices.append((self.now + self.rng.randint(0, 2), other, node))

    def notify(self) -> None:
        due = [n for n in self.notices if n[0] <= self.now]
        self.notices = [n for n in self.notices if n[0] > self.now]
        for _, node, peer in due:
            core = self.cores[node]
            if core is not None and node not in self.paused:
                core.peer_unreachable(peer)
                self.handle_ready(node)

    def compact(self, node: str, core: RaftCore) -> None:
        """The driver's snapshot: state machine image at applied, made durable, then the
        log before it dropped."""
        index = core.applied
        if index - core.offset < 5:
            return
        data = encode_state(self.applied[node][:index])
        core.compact(index, data)
        self.durable[node].save(None, [], core.snapshot)
        self.log(f"{node} compacts its log up to {index}")

    def restart(self, node: str) -> None:
        self.cores[node] = self._boot(node)
        self.log(f"{node} restarts at term {self.durable[node].load().hard_state.term}")

    # --- the driver's duties ------------------------------------------------------------

    def handle_ready(self, node: str) -> None:
        core = self.cores[node]
        while core is not None and (rd := core.ready()) is not None:
            if self.rng.random() < self.faults.crash_mid_ready:
                self.crash(node)  # before persisting: this Ready is lost entirely
                return
            self.persist(node, rd)
            for m in rd.messages:
                self.send(m)
            self.apply(node, rd)
            for rs in rd.read_states:
                self.finish_read(node, rs.index, rs.context)
            if rd.soft_state is not None and rd.soft_state.role == Role.LEADER:
                self.became_leader(node, core)
            core.advance(rd)

    def persist(self, node: str, rd: Ready) -> None:
        hard_state = rd.hard_state
        if hard_state is not None and BUG_VOTE_NOT_PERSISTED in self.bugs:
            hard_state = HardState(hard_state.term, None, hard_state.commit)  # vote not saved
        self.durable[node].save(hard_state, rd.entries, rd.snapshot)

    def apply(self, node: str, rd: Ready) -> None:
        applied = self.applied[node]
        if rd.snapshot is not None:  # restore the state machine from the snapshot
            self.snapshots_installed += 1
            applied[:] = decode_state(rd.snapshot.data)
            for index, data in enumerate(applied, start=1):
                self.checks += 1
                if self.committed.get(index, data) != data:
                    raise Violation(f"state-machine safety: snapshot gives {node} {data!r} "
                                    f"at {index}, others applied {self.committed[index]!r}")
        for entry in rd.committed:
            if entry.index != len(applied) + 1:
                # A restarted node re-applies from its durable log, from index 1.
                applied[:] = applied[: entry.index - 1]
                if len(applied) != entry.index - 1:
                    raise Violation(f"{node} applies {entry.index} after {len(applied)}")
            self.checks += 1
            known = self.committed.get(entry.index)
            if known is not None and known != entry.data:
                raise Violation(f"state-machine safety: {node} applies {entry.data!r} at "
                                f"{entry.index}, others applied {known!r}")
            self.committed[entry.index] = entry.data
            term = self.cores[node].term  # type: ignore[union-attr]
            self.commit_term[entry.index] = min(self.commit_term.get(entry.index, term), term)
            applied.append(entry.data)
            if entry.data in self.proposals:
                del self.proposals[entry.data]
                self.acked_index = max(self.acked_index, entry.index)
                self.writes_acked += 1

    def became_leader(self, node: str, core: RaftCore) -> None:
        other = self.leaders.get(core.term)
        if other is not None and other != node:
            raise Violation(f"election safety: {other} and {node} both lead term {core.term}")
        self.leaders[core.term] = node
        self.checks += 1 + len(self.committed)
        self.log(f"{node} becomes leader of term {core.term}")
        for index, data in self.committed.items():
            if self.commit_term[index] >= core.term:
                continue  # committed in this term or later: nothing to require yet
            if index <= core.offset:
                continue  # inside its snapshot, which was checked when it was applied
            if index > core.last_index or core.entry(index).data != data:
                raise Violation(f"leader completeness: {node} (term {core.term}) lacks "
                                f"committed entry {index}")

    def finish_read(self, node: str, index: int, context: bytes) -> None:
        began = self.reads.pop(context, None)
        if began is None:
            return
        self.reads_done += 1
        self.checks += 1
        if index < began:
            raise Violation(f"ReadIndex: {node} read at index {index} although index {began} "
                            f"was acknowledged before the read began")

    # --- the network ----------------------------------------------------------------------

    def send(self, m: Message) -> None:
        if m.type == MsgType.VOTE_RESP and not m.reject:
            self.checks += 1
            earlier = self.granted.setdefault((m.frm, m.term), m.to)
            if earlier != m.to:
                raise Violation(f"election safety: {m.frm} voted for {earlier} and {m.to} in "
                                f"term {m.term}")
        f = self.faults
        if (m.frm, m.to) in self.blocked or self.rng.random() < f.drop:
            return
        copies = 2 if self.rng.random() < f.duplicate else 1
        for _ in range(copies):
            self.seq += 1
            self.network.append((self.now + self.rng.randint(1, f.max_delay), self.seq, m))

    def deliver(self) -> None:
        # Messages to a paused node wait in the network until it wakes up.
        due = sorted((item for item in self.network
                      if item[0] <= self.now and item[2].to not in self.paused),
                     key=lambda item: (item[0], item[1]))
        self.network = [item for item in self.network
                        if item[0] > self.now or item[2].to in self.paused]
        for _, _, m in due:
            core = self.cores[m.to]
            if core is None or (m.frm, m.to) in self.blocked:
                continue
            core.step(m)
            self.handle_ready(m.to)

    def partition(self) -> None:
        kind = self.rng.choice(["isolate", "split", "one-way"])
        nodes = list(self.ids)
        self.rng.shuffle(nodes)
        if kind == "isolate":
            victim = self.leader() or nodes[0]
            others = [n for n in self.ids if n != victim]
            self.blocked = {(victim, o) for o in others} | {(o, victim) for o in others}
        elif kind == "split":
            cut = self.rng.randint(1, len(nodes) - 1)
            a, b = nodes[:cut], nodes[cut:]
            self.blocked = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
        else:
            self.blocked = {(nodes[0], nodes[1])}
        self.log(f"partition {kind}: {sorted(self.blocked)}")

    # --- clients and checks ------------------------------------------------------------

    def members(self) -> list[str]:
        """The configuration the current leader holds (empty when there is no leader)."""
        leader = self.leader()
        core = self.cores[leader] if leader else None
        return [*core.voters, *core.learners] if core else []

    def leader(self) -> str | None:
        live = [(c.term, n) for n, c in self.cores.items() if c is not None and c.role == Role.LEADER]
        return max(live)[1] if live else None

    def client(self) -> None:
        alive = [n for n, c in self.cores.items() if c is not None and n not in self.paused]
        if not alive:
            return
        node = self.rng.choice(alive)
        core = self.cores[node]
        assert core is not None
        if self.rng.random() < 0.6:
            data = b"w%d-%d" % (self.seed, self.seq)
            self.seq += 1
            try:
                core.propose(data)
                self.proposals[data] = 0
            except NotLeaderError:
                return
        else:
            context = b"r%d" % self.seq
            self.seq += 1
            try:
                core.read_index(context)
                self.reads[context] = self.acked_index
            except NotLeaderError:
                return
        self.handle_ready(node)

    def check_matches(self) -> None:
        """What a leader counts as replicated is really there: a follower in the leader's
        term holds the leader's entry at its match index (§5.3, §5.4.2)."""
        for leader in self.cores.values():
            if leader is None or leader.role != Role.LEADER:
                continue
            for peer, pr in leader.progress.items():
                follower = self.cores.get(peer)
                if follower is None or follower.term != leader.term or pr.match <= max(
                        follower.offset, leader.offset):
                    continue
                if follower.term_at(pr.match) != leader.term_at(pr.match):
                    raise Violation(f"acknowledged entry lost: {peer} no longer holds entry "
                                    f"{pr.match} that leader {leader.id} counted")
                self.checks += 1

    def check_logs(self) -> None:
        """Log matching (§5.3), on every pair of live nodes."""
        cores = [c for c in self.cores.values() if c is not None]
        for i, a in enumerate(cores):
            for b in cores[i + 1:]:
                low = max(a.offset, b.offset)
                top = min(a.last_index, b.last_index)
                while top > low and a.term_at(top) != b.term_at(top):
                    top -= 1
                if top > low and a.entries(low + 1, top + 1) != b.entries(low + 1, top + 1):
                    raise Violation(f"log matching: {a.id} and {b.id} share (index {top}, term "
                                    f"{a.term_at(top)}) but differ before it")
                self.checks += 1

    def pause(self) -> None:
        node = self.leader() if self.rng.random() < 0.7 else self.rng.choice(self.ids)
        if node is not None and self.cores[node] is not None:
            self.paused[node] = self.now + self.rng.randint(15, 60)
            self.log(f"{node} pauses until t={self.paused[node]}")

    def wake(self, node: str) -> None:
        del self.paused[node]
        self.log(f"{node} wakes up")
        core = self.cores[node]
        if core is not None and core.role == Role.LEADER:
            # A client was waiting on the stale leader: the read arrives before anything
            # the node missed while it slept.
            context = b"r%d" % self.seq
            self.seq += 1
            core.read_index(context)
            self.reads[context] = self.acked_index
            self.handle_ready(node)

    def step(self) -> None:
        self.now += 1
        f = self.faults
        for node in self.ids:
            if node in self.paused:
                if self.paused[node] <= self.now:
                    self.wake(node)
                continue
            core = self.cores[node]
            if core is None:
                if self.rng.random() < f.restart:
                    self.restart(node)
                continue
            if self.rng.random() < f.crash:
                self.crash(node)
                continue
            core.tick()
            if self.rng.random() < f.compact:
                self.compact(node, core)
            if self.rng.random() < f.membership and core.role == Role.LEADER:
                self.change_membership(core)
            if self.rng.random() < f.transfer and core.role == Role.LEADER:
                core.transfer_leadership(self.rng.choice([n for n in self.ids if n != node]))
            self.handle_ready(node)
        self.deliver()
        self.notify()
        if self.rng.random() < f.blip:
            node, peer = self.rng.sample(self.ids, 2)
            self.notices.append((self.now, node, peer))
            self.log(f"{node}'s links to {peer} close for a moment")
        if self.rng.random() < f.pause:
            self.pause()
        if self.rng.random() < f.partition:
            self.partition()
        elif self.blocked and self.rng.random() < f.heal:
            self.blocked = set()
        if self.rng.random() < 0.5:
            self.client()
        self.check_matches()
        self.check_logs()

    def run(self, ticks: int, settle_ticks: int = 300) -> None:
        for _ in range(ticks):
            self.step()
        # Heal: no more faults, everyone back; a leader must appear and commit.
        self.faults = Faults(drop=0, duplicate=0, max_delay=1, crash=0, crash_mid_ready=0,
                             restart=1,
                             partition=0, heal=1, transfer=0, pause=0, compact=0,
                             membership=0, blip=0)
        self.blocked = set()
        for node in list(self.paused):
            self.paused[node] = self.now
        deadline = self.now + settle_ticks
        marker = b"final-%d" % self.seed
        proposed = False
        retry_at = 0
        while self.now < deadline:
            self.step()
            leader = self.leader()
            if leader and marker not in self.committed.values() and self.now >= retry_at:
                core = self.cores[leader]
                assert core is not None
                try:  # a client retries until its write commits (a lost proposal is normal)
                    core.propose(marker)
                    self.proposals[marker] = 0
                    proposed = True
                    retry_at = self.now + 30
                    self.handle_ready(leader)
                except NotLeaderError:
                    pass
            members = self.members()
            if proposed and marker not in self.proposals and members and all(
                    len(self.applied[n]) >= max(self.committed) for n in members):
                self.check_logs()
                return
        raise Violation(f"liveness: no commit within {settle_ticks} ticks after healing")


def run_seed(seed: int, nodes: int, ticks: int, bugs: frozenset[str] = frozenset(),
             faults: Faults | None = None) -> Simulation:
    sim = Simulation(seed, nodes, faults, bugs)
    sim.run(ticks)
    return sim


def main() -> None:
    parser = argparse.ArgumentParser(description="replay one simulator seed")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--ticks", type=int, default=400)
    parser.add_argument("--bug", action="append", default=[])
    parser.add_argument("--stormy", action="store_true", help="the STORMY fault mix")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    sim = Simulation(args.seed, args.nodes, STORMY if args.stormy else None,
                     bugs=frozenset(args.bug), trace=args.trace)
    try:
        sim.run(args.ticks)
        print(f"seed {args.seed}: ok, {sim.checks} checks, {sim.writes_acked} writes, "
              f"{sim.reads_done} reads")
    finally:
        if args.trace:
            print("\n".join(sim.trace[-200:]))


if __name__ == "__main__":
    main()


def figure_8(bugs: frozenset[str] = frozenset()) -> Simulation:
    """The paper's Figure 8 as a scripted nemesis on five simulated nodes (no random
    faults). An old-term entry reaches a majority while its leader's own-term no-op
    does not; a later leader may then overwrite it. Raises Violation if anything that
    was applied is overwritten - which happens only when commit counts old entries."""
    quiet = Faults(drop=0, duplicate=0, max_delay=1, crash=0, crash_mid_ready=0, restart=0,
                   partition=0, heal=0,
                   transfer=0, pause=0, compact=0, membership=0, blip=0)
    sim = Simulation(8, 5, quiet, bugs)
    sim.batch = 1  # one entry per append: an old entry can be acknowledged alone
    for node in sim.ids:
        sim.cores[node] = sim._boot(node)
    everyone = set(sim.ids)

    def core(node: str) -> RaftCore:
        found = sim.cores[node]
        assert found is not None
        return found

    def only(*nodes: str) -> None:
        """Let messages pass only among ``nodes``."""
        sim.blocked = {(a, b) for a in everyone for b in everyone
                       if a != b and not (a in nodes and b in nodes)}

    def rounds(until: Callable[[], bool], limit: int = 30) -> bool:
        for node in sim.ids:
            sim.handle_ready(node)
        for _ in range(limit):
            if until():
                return True
            sim.now += 1
            for node, live in sim.cores.items():
                if live is not None and live.role == Role.LEADER:  # heartbeats spread commit
                    live.tick()
                    sim.handle_ready(node)
            sim.deliver()
        return until()

    def elect(node: str) -> None:
        for _ in range(3):  # campaign again when a voter already voted in that term
            for other in sim.cores.values():
                if other is not None:
                    other.election_elapsed = other.election_ticks  # leases long expired
            core(node).campaign(pre_vote=False)
            if rounds(lambda: core(node).role == Role.LEADER, limit=4):
                return
        raise AssertionError(f"{node} did not win")

    only(*sim.ids)
    elect("n1")  # term 1: its no-op (index 1) reaches everyone
    assert rounds(lambda: all(core(n).commit >= 1 for n in sim.initial))
    only("n1", "n2")
    core("n1").propose(b"A")  # (a) index 2 reaches n2 only
    assert rounds(lambda: core("n2").term_at(2) == core("n1").term)
    sim.crash("n1")
    only("n3", "n4", "n5")  # (b) n5 leads a later term; its entries stay on n5
    elect("n5")
    only()
    core("n5").propose(b"B")
    rounds(lambda: True)
    sim.crash("n5")
    sim.restart("n1")  # (c) n1 leads again and gets A onto n3 - a majority holds it -
    only("n1", "n2", "n3")
    elect("n1")
    assert rounds(lambda: core("n1").progress["n3"].match >= 2)
    sim.crash("n1")  # ... and crashes before its own no-op is on a majority
    sim.restart("n5")  # (d) n5 wins with n3 and n4 and overwrites index 2
    only("n3", "n4", "n5")
    elect("n5")
    assert rounds(lambda: core("n3").commit >= core("n5").last_index)
    return sim
