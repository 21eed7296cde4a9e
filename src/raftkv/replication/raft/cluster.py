"""A cluster node's start-up: who this data directory is, whether to found a new
cluster or wait to be added to one, and rebuilding the state machine from the log.

Identity. ``node.json`` holds the node id and an *incarnation*: random bytes made
when the directory is first used. Peers remember the incarnation they saw for each
id (``peers.json``). A member that comes back with a different incarnation lost its
log (a wiped or replaced disk); letting it vote could elect a leader missing
acknowledged writes, so its links are refused with a message saying to remove it
and add it again (``raftkv cluster remove`` / ``add``). Removal forgets the old
incarnation, so the same id may return with its new directory. Never silently.

Founding. A node with no Raft state dials every peer and waits until each has
answered. If every one is also fresh, they are founding a cluster together: each
writes the same entry 1 (the configuration: itself and the peers' ids) - etcd's
"initial cluster". If any peer already has state, the cluster exists: this node
waits, outside the configuration, until an admin adds it (it then gets the log or a
snapshot from the leader). It never campaigns before it is a voter.

Recovery. The Raft log is the write-ahead log, kept by the node's ``LogStore``: the
state machine is the last snapshot plus the entries up to the persisted commit index
(``replay.rebuild``), replayed before the node serves (``applied`` is then handed to
the core so nothing is applied twice).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from raftkv.config import Config, ConfigError
from raftkv.replication.raft.core import RaftCore
from raftkv.replication.raft.log import WalRaftLog
from raftkv.replication.raft.node import RaftNode
from raftkv.replication.raft.replicator import RaftReplicator
from raftkv.replication.raft.transport import Hello, PeerNetwork, Refused
from raftkv.replication.replay import rebuild
from raftkv.storage.fs import FileSystem, write_atomically
from raftkv.tls import Tls

log = logging.getLogger("raftkv.cluster")

IDENTITY_FILE = "node.json"
KNOWN_PEERS_FILE = "peers.json"
FOUNDING_LOG_EVERY_S = 5.0
SNAPSHOT_EVERY_ENTRIES = 1_000_000  # or snapshot_threshold_bytes of entries, if sooner


def _write_json(fs: FileSystem, directory: str, name: str, data: object) -> None:
    write_atomically(fs, directory, name, orjson.dumps(data))


@dataclass(frozen=True, slots=True)
class Identity:
    node_id: str
    incarnation: str


def load_identity(fs: FileSystem, data_dir: str, node_id: str) -> Identity:
    """This directory's identity, made on first use; ConfigError when the directory
    belongs to another node id."""
    fs.makedirs(data_dir)
    path = os.path.join(data_dir, IDENTITY_FILE)
    if fs.exists(path):
        saved = orjson.loads(fs.read(path))
        if saved["nodeId"] != node_id:
            raise ConfigError(f"invalid setting --node-id: {node_id}, but {data_dir} belongs "
                              f"to node {saved['nodeId']}")
        return Identity(node_id, saved["incarnation"])
    identity = Identity(node_id, os.urandom(12).hex())
    _write_json(fs, data_dir, IDENTITY_FILE,
                {"nodeId": node_id, "incarnation": identity.incarnation})
    return identity


class KnownPeers:
    """The incarnation last seen for each peer id; decides who may link to us."""

    def __init__(self, fs: FileSystem, data_dir: str, own: Identity) -> None:
        self.fs = fs
        self.data_dir = data_dir
        self.own = own
        path = os.path.join(data_dir, KNOWN_PEERS_FILE)
        self.seen: dict[str, str] = orjson.loads(fs.read(path)) if fs.exists(path) else {}
        self.members: frozenset[str] = frozenset()  # kept current by the replicator

    def admit(self, hello: Hello) -> str | None:
        if hello.node_id == self.own.node_id:
            return f"{hello.node_id} is this node's own id: two nodes share an id"
        before = self.seen.get(hello.node_id)
        if before is not None and before != hello.incarnation and hello.node_id in self.members:
            return (f"{hello.node_id} is a member but came back with a new data directory "
                    f"(its log is gone); remove it (raftkv cluster remove {hello.node_id}) "
                    f"and add it again")
        if before != hello.incarnation:
            self.seen[hello.node_id] = hello.incarnation
            _write_json(self.fs, self.data_dir, KNOWN_PEERS_FILE, self.seen)
        return None

    def set_members(self, members: frozenset[str]) -> None:
        """A node removed from the configuration is forgotten: if it is added again,
        whatever directory it then brings is the one remembered."""
        gone = [node for node in self.seen if node not in members and node in self.members]
        self.members = members
        if gone:
            for node in gone:
                del self.seen[node]
            _write_json(self.fs, self.data_dir, KNOWN_PEERS_FILE, self.seen)


def open_cluster(cfg: Config, fs: FileSystem,
                 observe_save: Callable[[float, int], None] | None = None,
                 tls: Tls | None = None) -> RaftReplicator:
    """Recover this node's Raft state and build its replicator (its ``run`` founds or
    joins the cluster once the links are up)."""
    identity = load_identity(fs, cfg.data_dir, cfg.node_id)
    raft_log = WalRaftLog(fs, cfg.data_dir, cfg.storage.segment_max_bytes,
                          sync=cfg.fsync.value == "always")
    for warning in raft_log.warnings:
        log.warning(warning)
    stored = raft_log.load()
    sm = rebuild(stored, stored.hard_state.commit, cfg.data_dir, cfg.history)
    core = RaftCore(cfg.node_id, (), random.Random(), stored.hard_state, stored.entries,
                    stored.snapshot, applied=sm.applied_index)
    status = core.status()
    if stored.hard_state.commit > status.last_index:
        log.warning("the Raft log ends at %d but %d was committed: its tail was lost (was "
                    "--fsync off?); the leader will send it again", status.last_index,
                    stored.hard_state.commit)
    known = KnownPeers(fs, cfg.data_dir, identity)
    fresh = not (stored.hard_state.term or stored.entries or stored.snapshot)
    network = PeerNetwork(cfg.peers, cfg.cluster_secret,
                          lambda: Hello(identity.node_id, identity.incarnation, _fresh(core)),
                          known.admit, tls if tls is not None and tls.api else None)

    def config_changed() -> None:
        status = core.status()
        known.set_members(frozenset({*status.voters, *status.learners}))
        if not status.member and status.last_index > 0:
            log.warning("this node is not in the cluster's configuration (removed, or not "
                        "added yet)", extra={"voters": list(status.voters)})

    node = RaftNode(core, raft_log, sm, network, tick_s=cfg.raft_tick_ms / 1000,
                    snapshot_every=SNAPSHOT_EVERY_ENTRIES,
                    snapshot_bytes=cfg.storage.snapshot_threshold_bytes,
                    observe_save=observe_save, on_config=config_changed)
    known.members = frozenset({*status.voters, *status.learners})
    log.info("raft state recovered", extra={
        "nodeId": cfg.node_id, "term": status.term, "commitIndex": status.commit,
        "appliedIndex": sm.applied_index, "lastIndex": status.last_index,
        "voters": list(status.voters), "fresh": fresh})
    replicator = RaftReplicator(node, network, on_start=lambda: found_or_join(replicator))
    return replicator


def _fresh(core: RaftCore) -> bool:
    """Whether this node holds no Raft state at all (no term, no log, no snapshot)."""
    status = core.status()
    return not (status.term or status.last_index or status.offset)


async def found_or_join(replicator: RaftReplicator) -> None:
    """For a node with no state: wait for every peer's answer, then found a new cluster
    with them or wait to be added to the existing one (see the module doc)."""
    network, node = replicator.network, replicator.node
    assert network is not None
    if not _fresh(node.core):
        return  # the log says who the members are
    waited = 0.0
    while True:
        answers = [network.answers.get(p.url) for p in network.peers]
        if all(a is not None for a in answers):
            break
        if node.core.status().last_index > 0:  # a leader reached us first: it exists
            return
        await asyncio.sleep(0.1)
        waited += 0.1
        if waited >= FOUNDING_LOG_EVERY_S:
            waited = 0.0
            missing = [p.url for p, a in zip(network.peers, answers, strict=True) if a is None]
            log.info("waiting for every peer to answer before founding the cluster",
                     extra={"missing": missing})
    refused = [a for a in answers if isinstance(a, Refused)]
    hellos = [a for a in answers if isinstance(a, Hello)]
    if refused:
        log.error("peers refused this node: %s", "; ".join(str(r) for r in refused))
    if not refused and all(h.fresh for h in hellos):
        voters = sorted({node.core.status().id, *(h.node_id for h in hellos)})
        founded = await node.bootstrap(voters)
        if founded:
            log.info("founded a new cluster", extra={"voters": voters})
        return
    log.warning("the cluster already exists and this node is not a member yet; add it "
                "with: raftkv cluster add %s --url <the members' URLs>", node.core.status().id)
