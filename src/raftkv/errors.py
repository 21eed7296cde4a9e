"""The one error tree of raftkv.

Core and service raise these; each front maps them to its own wire form
(HTTP status + ``code``, RESP error string) through a single table. A missing
key is ``None``, never an error, and ``StateMachine.apply`` never raises for
user errors: it returns a result so every replica takes the same path.

    RaftKVError
    ├── RequestError                      the caller can fix it          (4xx)
    │   ├── InvalidArgument               malformed key, value, ttl, JSON      400
    │   ├── ConditionFailed               If-Match / If-None-Match / NX / XX   412
    │   ├── NotInteger                    INCR on a value that is no integer   400
    │   ├── Unauthenticated               missing or wrong credentials         401
    │   ├── Forbidden                     valid credentials, not allowed       403
    │   ├── RateLimited                   slow down (retry_after_s)            429
    │   ├── TooLarge                      value, body or transaction too big   413
    │   ├── MembershipRefused             add a member twice, remove the last  409
    │   ├── WrongType                     a string read of a hash, list, set... 409
    │   ├── TxnFailed                     an op of an atomic transaction failed 409
    │   ├── NotFound                      no such lease (a key is None instead) 404
    │   └── WaitTimedOut                  a lock or campaign waited its limit  408
    ├── ClusterError                      try again, maybe elsewhere
    │   ├── NotLeader                     this node cannot order writes        (forwarded)
    │   └── Unavailable                   no leader / shutting down, not applied 503
    ├── CommitTimeout                     proposed, outcome unknown            504
    └── StorageError                      the disk failed us                   500/507
        ├── CorruptionError               refuse to start: names file + offset
        ├── DiskFullError                 ENOSPC, the write was not applied    507
        └── OutOfMemory                   over maxmemory under noeviction      507
"""

from __future__ import annotations


class RaftKVError(Exception):
    """Root of every error raftkv raises on purpose."""

    code = "internal"


class RequestError(RaftKVError):
    """Raised when the request itself is wrong; retrying it unchanged fails again."""

    code = "invalid_argument"


class InvalidArgument(RequestError):
    """Raised when a key, value, TTL, parameter or body fails validation."""

    code = "invalid_argument"


class ConditionFailed(RequestError):
    """Raised when a compare-and-swap or create-only precondition does not hold."""

    code = "condition_failed"


class NotInteger(RequestError):
    """Raised when an increment meets a value that is not a base-10 64-bit integer."""

    code = "not_integer"


class WrongType(RequestError):
    """Raised when a string operation meets a key holding a hash, list, set or sorted
    set (Redis's WRONGTYPE)."""

    code = "wrong_type"


class Unauthenticated(RequestError):
    """Raised for missing, malformed, unknown or wrong credentials (one message for all)."""

    code = "unauthenticated"


class Forbidden(RequestError):
    """Raised when valid credentials do not cover the key or route."""

    code = "forbidden"


class RateLimited(RequestError):
    """Raised when a client exceeds its token bucket."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooLarge(RequestError):
    """Raised when a value or body exceeds its configured limit."""

    code = "too_large"


class MembershipRefused(RequestError):
    """Raised when a membership change cannot apply to the current configuration."""

    code = "conflict"


class TxnFailed(RequestError):
    """Raised when an op of an atomic transaction fails (a value that is not a number);
    nothing of the transaction applied. ``failed_op`` is the op's index."""

    code = "txn_failed"

    def __init__(self, message: str, failed_op: int) -> None:
        super().__init__(message)
        self.failed_op = failed_op


class NotFound(RequestError):
    """Raised when a lease named by the request does not exist (or ran out). A missing
    key is not an error: it is None."""

    code = "not_found"


class WaitTimedOut(RequestError):
    """Raised when a lock acquisition or an election campaign waited as long as it was
    allowed to; it holds nothing."""

    code = "wait_timed_out"


class ClusterError(RaftKVError):
    """Raised when this node cannot serve the request now; another node or a retry may."""

    code = "unavailable"


class NotLeader(ClusterError):
    """Raised when a write reaches a node that is not the leader (``leader_id`` is a hint)."""

    code = "not_leader"

    def __init__(self, message: str, leader_id: str | None) -> None:
        super().__init__(message)
        self.leader_id = leader_id


class Unavailable(ClusterError):
    """Raised when no leader is known or the node is draining; the write was not applied."""

    code = "unavailable"

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unblocked(RaftKVError):
    """A blocked command (BLPOP...) was ended by CLIENT UNBLOCK ... ERROR."""

    code = "unblocked"


class CommitTimeout(RaftKVError):
    """Raised when a proposed write's outcome is unknown (it may or may not apply)."""

    code = "commit_timeout"


class StorageError(RaftKVError):
    """Raised when the disk fails; after an fsync failure nothing more is acknowledged."""

    code = "storage_error"


class CorruptionError(StorageError):
    """Raised at recovery when a file is damaged beyond a torn tail; the node refuses to start."""

    code = "corruption"


class DiskFullError(StorageError):
    """Raised when the disk is full (ENOSPC); the write was not applied."""

    code = "disk_full"


class OutOfMemory(StorageError):
    """Raised when a write would exceed the memory limit under ``noeviction`` (Redis's OOM)."""

    code = "out_of_memory"
