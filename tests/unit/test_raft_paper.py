"""One test per rule of the Raft paper / dissertation, driven by hand, no sleeps.

A ``Cluster`` joins cores with a perfect in-memory network whose links can be cut;
``settle()`` handles every Ready (persist, send, apply) until nothing moves."""

from __future__ import annotations

import random

import pytest

from raftkv.replication.raft.core import (
    BUG_COMMIT_PREVIOUS_TERM,
    BUG_READ_WITHOUT_HEARTBEAT,
    BUG_TRUNCATE_WITHOUT_CONFLICT,
    ConfChangeRefused,
    NotLeaderError,
    RaftCore,
    Role,
)
from raftkv.replication.raft.messages import (
    EntryKind,
    HardState,
    LogEntry,
    Message,
    MsgType,
)


class Cluster:
    def __init__(self, n: int = 3, bugs: frozenset[str] = frozenset(), seed: int = 1) -> None:
        self.ids = [f"n{i + 1}" for i in range(n)]
        self.rng = random.Random(seed)
        self.bugs = bugs
        self.durable: dict[str, tuple[HardState, list[LogEntry]]] = {
            i: (HardState(), []) for i in self.ids}
        self.nodes = {i: self._core(i) for i in self.ids}
        self.cut: set[str] = set()  # nodes whose links are all down
        self.inbox: list[Message] = []
        self.applied: dict[str, list[LogEntry]] = {i: [] for i in self.ids}
        self.reads: dict[str, list[tuple[int, bytes]]] = {i: [] for i in self.ids}

    def _core(self, node: str) -> RaftCore:
        hs, log = self.durable[node]
        return RaftCore(node, self.ids, random.Random(self.rng.random()), hs, list(log),
                        applied=0, bugs=self.bugs)

    def restart(self, node: str) -> None:
        self.applied[node] = []
        self.nodes[node] = self._core(node)

    def settle(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            moved = False
            for node, core in self.nodes.items():
                while (rd := core.ready()) is not None:
                    moved = True
                    hs, log = self.durable[node]
                    if rd.entries:
                        log = log[: rd.entries[0].index - 1] + list(rd.entries)
                    self.durable[node] = (rd.hard_state or hs, log)
                    self.inbox += rd.messages
                    self.applied[node] += rd.committed
                    self.reads[node] += [(r.index, r.context) for r in rd.read_states]
                    core.advance(rd)
            inbox, self.inbox = self.inbox, []
            for m in inbox:
                if m.frm not in self.cut and m.to not in self.cut:
                    self.nodes[m.to].step(m)
                    moved = True
            if not moved:
                return

    def elect(self, node: str) -> RaftCore:
        core = self.nodes[node]
        core.campaign(pre_vote=True)
        self.settle()
        assert core.role == Role.LEADER, core.role
        return core

    def tick_all(self, ticks: int) -> None:
        for _ in range(ticks):
            for node, core in self.nodes.items():
                if node not in self.cut:
                    core.tick()
            self.settle()


def test_a_follower_that_times_out_is_elected_with_a_majority():  # §5.2
    c = Cluster()
    c.tick_all(30)
    leaders = [n for n, core in c.nodes.items() if core.role == Role.LEADER]
    assert len(leaders) == 1
    terms = {core.term for core in c.nodes.values()}
    assert terms == {1}  # pre-vote: no wasted terms
    assert all(core.leader == leaders[0] for core in c.nodes.values())


def test_a_new_leader_appends_a_noop_of_its_term():  # §8
    c = Cluster()
    leader = c.elect("n1")
    last = leader.entry(leader.last_index)
    assert last.kind is EntryKind.NOOP and last.term == leader.term
    assert [e.kind for e in c.applied["n2"]] == [EntryKind.NOOP]


def test_each_node_votes_at_most_once_per_term():  # §5.2
    c = Cluster()
    voter = c.nodes["n3"]
    voter.step(Message(MsgType.VOTE, "n1", "n3", 5, log_term=0, index=0))
    voter.step(Message(MsgType.VOTE, "n2", "n3", 5, log_term=0, index=0))
    rd = voter.ready()
    assert rd is not None and rd.hard_state is not None and rd.hard_state.vote == "n1"
    replies = {m.to: m.reject for m in rd.messages}
    assert replies == {"n1": False, "n2": True}


def test_a_candidate_with_a_stale_log_is_refused():  # §5.4.1
    c = Cluster()
    voter = c.nodes["n3"]
    voter.log.append(LogEntry(2, 1, b"x"))
    voter.term = 2
    voter.step(Message(MsgType.VOTE, "n1", "n3", 3, log_term=1, index=5))
    rd = voter.ready()
    assert rd is not None and [m.reject for m in rd.messages] == [True]


def test_committed_entries_are_applied_everywhere_in_order():  # §5.3
    c = Cluster()
    leader = c.elect("n1")
    for i in range(10):
        leader.propose(b"cmd%d" % i)
    c.settle()
    data = [[e.data for e in c.applied[n] if e.kind is EntryKind.NORMAL] for n in c.ids]
    assert data == [[b"cmd%d" % i for i in range(10)]] * 3


def test_proposals_to_a_follower_are_refused_with_a_leader_hint():
    c = Cluster()
    c.elect("n1")
    with pytest.raises(NotLeaderError) as err:
        c.nodes["n2"].propose(b"x")
    assert err.value.leader == "n1"


def follower_with_log(terms: list[int], bugs: frozenset[str] = frozenset()) -> RaftCore:
    core = RaftCore("n2", ["n1", "n2", "n3"], random.Random(1),
                    HardState(term=max(terms)), [LogEntry(t, i + 1, b"%d" % i)
                                                 for i, t in enumerate(terms)], bugs=bugs)
    core.leader = "n1"
    return core


def test_an_entry_already_present_is_not_truncated_by_a_stale_append():  # §5.3
    core = follower_with_log([1, 1, 1])
    stale = Message(MsgType.APPEND, "n1", "n2", 1, log_term=0, index=0,
                    entries=(LogEntry(1, 1, b"0"),), commit=0)
    core.step(stale)
    assert core.last_index == 3


def test_negative_control_truncating_without_a_conflict_is_caught():
    core = follower_with_log([1, 1, 1], frozenset({BUG_TRUNCATE_WITHOUT_CONFLICT}))
    core.step(Message(MsgType.APPEND, "n1", "n2", 1, log_term=0, index=0,
                      entries=(LogEntry(1, 1, b"0"),), commit=0))
    assert core.last_index == 1  # the planted bug really drops entries


def test_a_conflicting_suffix_is_replaced():  # §5.3
    core = follower_with_log([1, 1, 2, 2])
    core.term = 3
    core.step(Message(MsgType.APPEND, "n1", "n2", 3, log_term=1, index=2,
                      entries=(LogEntry(3, 3, b"new"),), commit=0))
    assert [e.term for e in core.entries(1, core.last_index + 1)] == [1, 1, 3]


def test_a_rejection_skips_back_over_the_conflicting_term():  # §5.3, fast backtracking
    core = follower_with_log([1, 2, 2, 2, 2])
    core.term = 4
    core.step(Message(MsgType.APPEND, "n1", "n2", 4, log_term=3, index=5, commit=0))
    rd = core.ready()
    assert rd is not None
    reply = rd.messages[-1]
    assert reply.reject and reply.reject_hint == 1


def test_figure_8_an_old_term_entry_is_not_committed_by_counting():
    """The paper's Figure 8 (§5.4.2): an entry of an old term held by a majority may
    still be overwritten by a later leader, so counting replicas must not commit it."""
    # A majority of matches at an entry of an earlier term must not move commit
    # until an entry of the current term (the new leader's no-op) joins them.
    core = RaftCore("n1", ["n1", "n2", "n3", "n4", "n5"], random.Random(1), HardState(term=3),
                    [LogEntry(1, 1, b"x"), LogEntry(2, 2, b"y")])
    core.campaign(pre_vote=False)
    for peer in ("n2", "n3"):
        core.step(Message(MsgType.VOTE_RESP, peer, "n1", 4))
    assert core.role == Role.LEADER
    for peer in ("n2", "n3"):  # followers acknowledge index 2 (term 2) but not the no-op
        core.step(Message(MsgType.APPEND_RESP, peer, "n1", 4, index=2))
    assert core.commit == 0
    core.step(Message(MsgType.APPEND_RESP, "n2", "n1", 4, index=3))
    core.step(Message(MsgType.APPEND_RESP, "n3", "n1", 4, index=3))
    assert core.commit == 3  # the no-op of term 4 commits, and index 2 with it


def test_negative_control_committing_an_old_term_entry_by_counting_is_caught():
    core = RaftCore("n1", ["n1", "n2", "n3", "n4", "n5"], random.Random(1), HardState(term=3),
                    [LogEntry(1, 1, b"x"), LogEntry(2, 2, b"y")],
                    bugs=frozenset({BUG_COMMIT_PREVIOUS_TERM}))
    core.campaign(pre_vote=False)
    for peer in ("n2", "n3"):
        core.step(Message(MsgType.VOTE_RESP, peer, "n1", 4))
    for peer in ("n2", "n3"):
        core.step(Message(MsgType.APPEND_RESP, peer, "n1", 4, index=2))
    assert core.commit == 2  # the planted bug commits what Figure 8 shows can be lost


def test_read_index_waits_for_a_heartbeat_round():  # §D 6.4
    c = Cluster()
    leader = c.elect("n1")
    leader.propose(b"v")
    c.settle()
    c.cut = {"n2", "n3"}  # the leader cannot confirm it is still the leader
    leader.read_index(b"r1")
    c.settle()
    assert c.reads["n1"] == []
    c.cut = set()
    leader.read_index(b"r2")
    c.settle()
    assert [ctx for _, ctx in c.reads["n1"]] == [b"r1", b"r2"]
    assert all(index == leader.commit for index, _ in c.reads["n1"])


def test_acks_of_an_earlier_round_do_not_confirm_a_later_read():  # §D 6.4
    # Found by the simulator: a follower's read request arrives twice; the acks of the
    # first copy's heartbeat round, late, must not confirm reads begun after that round.
    c = Cluster()
    leader = c.elect("n1")
    leader.propose(b"v")
    c.settle()
    request = Message(MsgType.READ_INDEX, "n2", "n1", leader.term, context=b"f1")
    leader.step(request)
    out = leader.ready()
    assert out is not None
    leader.advance(out)
    late_acks = []
    for heartbeat in out.messages:  # the followers answer; the answers are held back
        follower = c.nodes[heartbeat.to]
        follower.step(heartbeat)
        answer = follower.ready()
        assert answer is not None
        follower.advance(answer)
        late_acks += answer.messages
    c.cut = {"n2", "n3"}  # from here on the leader cannot confirm anything new
    leader.read_index(b"mine")
    leader.step(request)  # the duplicate
    for ack in late_acks:
        leader.step(ack)
    c.settle()
    assert b"mine" not in [ctx for _, ctx in c.reads["n1"]]


def test_negative_control_reading_without_a_heartbeat_round_answers_while_cut_off():
    c = Cluster(bugs=frozenset({BUG_READ_WITHOUT_HEARTBEAT}))
    leader = c.elect("n1")
    c.cut = {"n2", "n3"}
    leader.read_index(b"r1")
    c.settle()
    assert c.reads["n1"]  # answered with no confirmation: the simulator shows it stale


def test_a_follower_read_is_confirmed_by_the_leader():  # §D 6.4
    c = Cluster()
    c.elect("n1").propose(b"v")
    c.settle()
    c.nodes["n2"].read_index(b"f1")
    c.settle()
    assert c.reads["n2"] == [(c.nodes["n1"].commit, b"f1")]


def test_a_leader_cut_off_from_its_quorum_steps_down():  # §D 6.2 check-quorum
    c = Cluster()
    leader = c.elect("n1")
    c.cut = {"n2", "n3"}
    for _ in range(2 * leader.election_ticks):
        leader.tick()
        c.settle()
    assert leader.role == Role.FOLLOWER


def test_a_partitioned_node_does_not_disrupt_the_cluster_on_return():  # §D 9.6 pre-vote
    c = Cluster()
    leader = c.elect("n1")
    c.cut = {"n3"}
    loner = c.nodes["n3"]
    for _ in range(100):
        loner.tick()
        c.settle()
    assert loner.term == leader.term  # pre-votes failed; the term did not run away
    c.cut = set()
    c.tick_all(5)
    assert leader.role == Role.LEADER and loner.leader == "n1"


def test_followers_told_their_leader_is_unreachable_elect_another_within_ticks():
    def new_leader_after(ticks: int, told: bool) -> str | None:
        c = Cluster()
        old = c.elect("n1")
        c.cut = {"n1"}  # the leader's process died: every link to it closed
        if told:
            for node in ("n2", "n3"):
                c.nodes[node].peer_unreachable("n1")
        c.tick_all(ticks)
        leaders = [n for n, core in c.nodes.items() if core.role == Role.LEADER and n != "n1"]
        assert old.role == Role.LEADER  # (it never heard of any of this)
        return leaders[0] if leaders else None

    assert new_leader_after(4, told=True) in ("n2", "n3")
    assert new_leader_after(4, told=False) is None  # the control: a timeout takes 10+ ticks


def test_the_survivors_take_turns_in_id_order_so_the_vote_is_not_split():
    c = Cluster(5)
    c.elect("n1")
    c.cut = {"n1"}
    for node in ("n5", "n4", "n3", "n2"):  # told in any order
        c.nodes[node].peer_unreachable("n1")
    c.settle()  # no tick at all: the first in id order campaigned at once and won
    assert c.nodes["n2"].role == Role.LEADER
    assert all(c.nodes[n].leader == "n2" for n in ("n3", "n4", "n5"))


def test_a_pre_vote_the_lease_ignored_is_answered_once_the_leader_is_gone():
    c = Cluster()
    c.elect("n1")
    c.cut = {"n1"}
    c.nodes["n2"].peer_unreachable("n1")
    c.settle()  # n3 has not seen the links close yet: it honours the lease
    assert c.nodes["n2"].role != Role.LEADER and c.nodes["n3"].leader == "n1"
    c.nodes["n3"].peer_unreachable("n1")
    c.settle()  # now it answers the pre-vote it held: n2 wins without waiting a tick
    assert c.nodes["n2"].role == Role.LEADER and c.nodes["n3"].leader == "n2"


def test_when_the_first_survivor_cannot_win_the_next_one_does():
    c = Cluster()
    leader = c.elect("n1")
    c.cut = {"n2"}  # n2 misses an entry that n1 and n3 commit
    leader.propose(b"x")
    c.settle()
    c.cut = {"n1"}  # then the leader dies
    for node in ("n2", "n3"):
        c.nodes[node].peer_unreachable("n1")
    c.settle()
    assert c.nodes["n2"].role != Role.LEADER  # its log is behind: n3 refused it
    c.tick_all(2)
    assert c.nodes["n3"].role == Role.LEADER and c.nodes["n2"].leader == "n3"


def test_one_failed_link_to_a_live_leader_does_not_disrupt_the_cluster():  # §D 9.6
    c = Cluster()
    leader = c.elect("n1")
    term = leader.term
    follower = c.nodes["n2"]
    follower.peer_unreachable("n3")  # not its leader: nothing changes
    assert follower.leader == "n1"
    follower.peer_unreachable("n1")
    assert follower.leader is None
    for _ in range(4):  # it campaigns; n3 still has a live leader and refuses
        follower.tick()
        c.settle()
    assert leader.role == Role.LEADER and {core.term for core in c.nodes.values()} == {term}
    c.tick_all(3)  # the leader's next heartbeat brings it back
    assert follower.leader == "n1" and follower.role == Role.FOLLOWER


def test_votes_are_ignored_while_a_live_leader_is_known():  # §D 6.2
    c = Cluster()
    c.elect("n1")
    follower = c.nodes["n2"]
    follower.step(Message(MsgType.VOTE, "n3", "n2", follower.term + 1, log_term=9, index=99))
    assert follower.term == c.nodes["n1"].term and follower.role == Role.FOLLOWER


def test_leadership_transfer_hands_over_to_an_up_to_date_follower():  # §D 3.10
    c = Cluster()
    leader = c.elect("n1")
    leader.propose(b"x")
    c.settle()
    leader.transfer_leadership("n2")
    c.settle()
    assert c.nodes["n2"].role == Role.LEADER and leader.role == Role.FOLLOWER
    assert c.nodes["n2"].term == leader.term


def test_a_vote_survives_a_restart():  # §5.1: persisted before the reply is sent
    c = Cluster()
    voter = c.nodes["n3"]
    voter.step(Message(MsgType.VOTE, "n1", "n3", 7, log_term=0, index=0))
    c.settle()
    c.restart("n3")
    again = c.nodes["n3"]
    again.step(Message(MsgType.VOTE, "n2", "n3", 7, log_term=0, index=0))
    rd = again.ready()
    assert rd is not None and [m.reject for m in rd.messages] == [True]
    assert again.role in (Role.FOLLOWER, Role.CANDIDATE)


def test_a_follower_behind_the_compacted_log_catches_up_by_snapshot(monkeypatch):  # §7
    import raftkv.replication.raft.core as core_module

    monkeypatch.setattr(core_module, "SNAPSHOT_CHUNK_BYTES", 7)  # many chunks
    c = Cluster()
    leader = c.elect("n1")
    c.cut = {"n3"}
    for i in range(20):
        leader.propose(b"cmd%02d" % i)
    c.settle()
    image = b"|".join(e.data for e in c.applied["n1"])
    leader.compact(leader.applied, image)
    assert leader.offset == leader.applied and leader.term_at(1) == -1
    c.cut = set()
    c.tick_all(2 * leader.heartbeat_ticks + 1)  # a stalled follower is noticed by heartbeats
    follower = c.nodes["n3"]
    assert follower.snapshot.data == image and follower.offset == leader.offset
    assert follower.commit == leader.commit
    leader.propose(b"after")
    c.settle()
    assert c.applied["n3"][-1].data == b"after"


def test_a_learner_gets_the_log_but_neither_votes_nor_counts_until_promoted():  # §D 4.2.1
    c = Cluster(4)
    c.durable["n4"] = (HardState(), [])
    for node in c.ids:  # start as a three-node cluster; n4 waits outside
        c.nodes[node] = RaftCore(node, ["n1", "n2", "n3"], random.Random(1))
    leader = c.elect("n1")
    leader.propose_conf_change("add-learner", "n4")
    c.settle()
    learner = c.nodes["n4"]
    assert learner.learners == ("n4",) and learner.commit == leader.commit
    c.cut = {"n2", "n3"}  # leader + learner is no majority: nothing commits
    before = leader.commit
    leader.propose(b"x")
    c.settle()
    assert leader.commit == before
    c.cut = set()
    c.settle()
    leader.propose_conf_change("promote", "n4")
    c.settle()
    assert leader.voters == ("n1", "n2", "n3", "n4") and leader.quorum == 3
    c.cut = {"n2", "n3"}  # now n1 + n4 are two of four: still no majority
    leader.propose(b"y")
    c.settle()
    assert c.applied["n4"][-1].data != b"y"
    c.cut = {"n3"}
    c.settle()
    leader.propose(b"z")
    c.settle()
    assert c.applied["n4"][-1].data == b"z"


def test_membership_changes_wait_for_an_own_term_commit_and_go_one_at_a_time():
    core = RaftCore("n1", ["n1", "n2", "n3"], random.Random(1), HardState(term=1),
                    [LogEntry(1, 1, b"old")])
    core.campaign(pre_vote=False)
    core.step(Message(MsgType.VOTE_RESP, "n2", "n1", 2))
    assert core.role == Role.LEADER and core.commit < core.last_index
    with pytest.raises(ConfChangeRefused, match="no entry of this term"):
        core.propose_conf_change("add-learner", "n4")
    core.step(Message(MsgType.APPEND_RESP, "n2", "n1", 2, index=core.last_index))
    core.propose_conf_change("add-learner", "n4")
    with pytest.raises(ConfChangeRefused, match="in progress"):
        core.propose_conf_change("add-learner", "n5")
    with pytest.raises(ConfChangeRefused):
        core.propose_conf_change("promote", "n9")


def test_a_removed_leader_steps_down_once_the_change_commits():  # §D 4.2.2
    c = Cluster()
    leader = c.elect("n1")
    leader.propose_conf_change("remove", "n1")
    c.settle()
    assert leader.role == Role.FOLLOWER and leader.voters == ("n2", "n3")
    c.tick_all(40)
    new = [n for n in ("n2", "n3") if c.nodes[n].role == Role.LEADER]
    assert len(new) == 1 and leader.role == Role.FOLLOWER  # n1 never campaigns again


def test_flow_control_caps_unacknowledged_bytes_per_follower():
    from raftkv.replication.raft.core import MAX_APPEND_BYTES, MAX_INFLIGHT_BYTES

    core = RaftCore("n1", ["n1", "n2", "n3"], random.Random(1))
    core.campaign(pre_vote=False)
    core.step(Message(MsgType.VOTE_RESP, "n2", "n1", 1))
    core.step(Message(MsgType.APPEND_RESP, "n2", "n1", 1, index=core.last_index))
    core.ready()  # drain
    for _ in range(100):
        core.propose(b"x" * 64 * 1024)
    rd = core.ready()
    assert rd is not None
    sent = sum(len(e.data) for m in rd.messages if m.to == "n2" and m.type == MsgType.APPEND
               for e in m.entries)
    assert 0 < sent <= MAX_INFLIGHT_BYTES + MAX_APPEND_BYTES  # not all 6.4 MB at once
    core.step(Message(MsgType.APPEND_RESP, "n2", "n1", 1, index=core.last_index - 50))
    more = core.ready()
    assert more is not None and any(m.to == "n2" for m in more.messages)  # acks free room


def test_a_batch_of_proposals_gets_consecutive_indexes_and_commits_together():
    c = Cluster()
    leader = c.elect("n1")
    indexes = leader.propose_batch([b"a", b"b", b"c"])
    assert indexes == [leader.last_index - 2, leader.last_index - 1, leader.last_index]
    c.settle()
    assert [e.data for e in c.applied["n3"][-3:]] == [b"a", b"b", b"c"]


def test_status_is_a_copy_of_the_core_as_the_driver_and_operators_see_it():
    """Not a rule of the paper: what the replicator reads instead of the core's fields."""
    c = Cluster()
    leader = c.elect("n1")
    leader.propose(b"x")
    c.settle()
    status = leader.status()
    assert (status.id, status.role, status.leader, status.member) == \
        ("n1", Role.LEADER, "n1", True)
    assert status.commit == status.last_index == leader.last_index
    assert status.match == {"n2": status.last_index, "n3": status.last_index}
    status.match["n2"] = 0  # a copy: changing it changes nothing in the core
    assert leader.status().match["n2"] == status.last_index
    follower = c.nodes["n2"].status()
    assert follower.role == Role.FOLLOWER and follower.leader == "n1" and follower.match == {}
