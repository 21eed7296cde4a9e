"""raftkv's Python client: keys, transactions, watch, leases, locks and elections over
the HTTP API, blocking (``Client``) or for asyncio (``AsyncClient``)."""

from raftkv.client.aio import AsyncClient, AsyncLease
from raftkv.client.errors import (
    ClientError,
    CommitTimeout,
    Compacted,
    ConditionFailed,
    LeaseLost,
    NotFound,
    Unavailable,
    WaitTimedOut,
)
from raftkv.client.protocol import Hold, KeyValue, TxnResult, WatchEvent
from raftkv.client.sync import Client, Lease

__all__ = ["AsyncClient", "AsyncLease", "Client", "ClientError", "CommitTimeout", "Compacted",
           "ConditionFailed", "Hold", "KeyValue", "Lease", "LeaseLost", "NotFound", "TxnResult",
           "Unavailable", "WaitTimedOut", "WatchEvent"]
