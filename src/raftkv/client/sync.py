"""The blocking client. ``AsyncClient`` (``aio.py``) is the same API for asyncio.

    from raftkv.client import Client

    with Client(["http://10.0.0.1:8080", "http://10.0.0.2:8080"]) as kv:
        kv.put("config/mode", "blue")
        with kv.lock("deploy") as hold:          # a lease kept alive meanwhile
            kv.txn([hold.fence()], [{"op": "put", "key": "release", "value": "42"}])
        for event in kv.watch(prefix="config/"):  # resumes across disconnects
            print(event.kind, event.key, event.value)
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import httpx
from httpx import USE_CLIENT_DEFAULT
from httpx._client import UseClientDefault
from httpx._types import TimeoutTypes

from raftkv.client import protocol as p
from raftkv.client.endpoints import Endpoints, tls_verify
from raftkv.client.errors import (
    ClientError,
    Compacted,
    LeaseLost,
    NotFound,
    Unavailable,
    error_for,
)

T = TypeVar("T")


class Client:
    """A raftkv cluster (or node) behind its HTTP API. Requests go to the leader when
    one is known (found from ``urls`` on first use), else to the next URL; a request
    that could not be delivered, or met 503, is tried again on the next node, and a
    write carries an idempotency key so a retry applies once."""

    def __init__(self, urls: str | Sequence[str] = "http://127.0.0.1:8080", *,
                 token: str | None = None, timeout_s: float = 10.0, retries: int = 3,
                 verify: Any = True, cacert: str | None = None, cert: str | None = None,
                 key: str | None = None) -> None:
        self.endpoints = Endpoints(urls)
        self.retries = retries
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(headers=headers, timeout=timeout_s,
                                 verify=tls_verify(verify, cacert, cert, key))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- keys --------------------------------------------------------------------

    def get(self, key: str, consistency: str = "linearizable") -> p.KeyValue | None:
        return self._send(p.get(key, consistency))

    def put(self, key: str, value: bytes | str, *, ttl_ms: int | None = None,
            lease: int | None = None) -> int:
        """Store ``value``; its revision."""
        return self._send(p.put(key, value, ttl_ms, lease))

    def delete(self, key: str) -> bool:
        return self._send(p.delete(key))

    def scan(self, prefix: str = "", page_size: int = 1000) -> Iterator[p.KeyValue]:
        """Every key under ``prefix``, in key order, a page at a time."""
        cursor = None
        while True:
            items, cursor = self._send(p.list_page(prefix, cursor, page_size))
            yield from items
            if not cursor:
                return

    def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
            failure: list[dict[str, Any]] | None = None) -> p.TxnResult:
        return self._send(p.txn(compare, success, failure or []))

    # --- watch -------------------------------------------------------------------

    def watch(self, *, key: str | None = None, prefix: str | None = None,
              from_revision: int | None = None, progress: bool = False
              ) -> Iterator[p.WatchEvent]:
        """Every change to ``key`` or under ``prefix`` (from ``from_revision``, else from
        now), for ever: a broken stream (or a cut, for reading slowly) is resumed
        after the last revision seen, on another node if need be. Compacted: the
        server's history no longer reaches back to where it would resume."""
        path, params = p.watch_path(key, prefix)
        decoder = p.EventDecoder(None if from_revision is None else from_revision - 1)
        failures = 0
        while True:
            try:
                for event in self._stream(path, params, decoder):
                    failures = 0
                    if progress or event.kind != "progress":
                        yield event
            except p.StreamEnded as ended:
                if ended.name == "compacted":
                    raise Compacted(str(ended), ended.data["revision"]) from None
            except (httpx.TransportError, Unavailable):
                failures += 1
                self.endpoints.failed()
                time.sleep(min(1.0, 0.05 * 2 ** failures))

    def _stream(self, path: str, params: dict[str, Any], decoder: p.EventDecoder
                ) -> Iterator[p.WatchEvent]:
        url = self._url()
        with self._http.stream("GET", url + path, params=params,
                               headers=decoder.resume_headers(),
                               timeout=httpx.Timeout(self._http.timeout.connect or 10,
                                                     read=None)) as response:
            if response.status_code != 200:
                response.read()
                raise error_for(response.status_code, response.json())
            for line in response.iter_lines():
                event = decoder.feed_line(line)
                if event is not None:
                    yield event

    # --- leases, locks, elections ----------------------------------------------------

    def lease(self, ttl_ms: int, *, keep_alive: bool = True) -> Lease:
        """A new lease, kept alive in the background until closed (then revoked)."""
        return Lease(self, self._send(p.lease_grant(ttl_ms)), ttl_ms, keep_alive)

    def keep_alive(self, lease: int) -> int:
        return self._send(p.lease_keep_alive(lease))

    def revoke(self, lease: int) -> bool:
        return self._send(p.lease_revoke(lease))

    def time_to_live(self, lease: int) -> dict[str, Any] | None:
        """The lease's TTL, the time left and its keys; None when it is gone."""
        return self._send(p.lease_time_to_live(lease))

    def leases(self) -> list[int]:
        return self._send(p.lease_list())

    def health(self) -> dict[str, Any]:
        """The health of the node the client talks to now."""
        return self._send(p.health())

    @contextlib.contextmanager
    def lock(self, name: str, *, ttl_ms: int = 10_000, wait_s: float | None = None
             ) -> Iterator[p.Hold]:
        """Hold lock ``name`` for the ``with`` block; the Hold's ``token`` fences
        writes (``hold.fence()`` is the compare). WaitTimedOut after ``wait_s``."""
        with self.lease(ttl_ms) as lease:
            hold = self._send(p.acquire("locks", name, lease.id, wait_ms=_ms(wait_s)),
                              timeout=None)
            try:
                yield hold
            finally:
                with contextlib.suppress(ClientError, httpx.HTTPError):
                    self._send(p.release("locks", hold))

    @contextlib.contextmanager
    def campaign(self, name: str, value: bytes | str, *, ttl_ms: int = 10_000,
                 wait_s: float | None = None) -> Iterator[p.Hold]:
        """Lead election ``name`` for the ``with`` block (resigning at its end)."""
        with self.lease(ttl_ms) as lease:
            hold = self._send(p.acquire("elections", name, lease.id, value, _ms(wait_s)),
                              timeout=None)
            try:
                yield hold
            finally:
                with contextlib.suppress(ClientError, httpx.HTTPError):
                    self._send(p.release("elections", hold))

    def proclaim(self, hold: p.Hold, value: bytes | str) -> bool:
        return self._send(p.proclaim(hold, value))

    def lock_holder(self, name: str) -> p.Hold | None:
        return self._send(p.holder("locks", name))

    def leader(self, name: str) -> p.Hold | None:
        return self._send(p.holder("elections", name))

    def observe(self, name: str) -> Iterator[p.Hold | None]:
        """The election's leader now, then at every change (None: nobody leads)."""
        decoder = p.EventDecoder(None)
        path = f"/v1/elections/{p._quote(name)}/observe"
        while True:
            try:
                for event in self._stream(path, {}, decoder):
                    if event.kind == "leader":
                        yield decoder.leader
            except (httpx.TransportError, Unavailable, p.StreamEnded):
                self.endpoints.failed()
                time.sleep(0.1)

    # --- transport -----------------------------------------------------------------

    def _send(self, call: p.Call[T], timeout: TimeoutTypes | UseClientDefault =
              USE_CLIENT_DEFAULT) -> T:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            url = self._url()
            try:
                response = self._http.request(call.method, url + call.path, params=call.params,
                                              json=call.body, headers=call.headers,
                                              timeout=timeout)
            except httpx.TransportError as exc:
                last = exc
                self.endpoints.failed()
                time.sleep(0.05 * 2 ** attempt)
                continue
            body = response.json() if response.content else {}
            if response.status_code in (503, 504) and attempt < self.retries:
                last = error_for(response.status_code, body)
                self.endpoints.failed()
                time.sleep(0.05 * 2 ** attempt)
                continue
            return call.parse(response.status_code, body)
        raise Unavailable(f"no node answered: {last}") from last

    def _url(self) -> str:
        if not self.endpoints.probed:
            self.endpoints.found([self._state_of(url) for url in self.endpoints.urls])
        return self.endpoints.current()

    def _state_of(self, url: str) -> str | None:
        try:
            return str(self._http.get(url + "/health", timeout=2).json()["state"])
        except (httpx.HTTPError, ValueError, KeyError):
            return None


class Lease:
    """A lease kept alive by a background thread every third of its TTL. ``lost`` is
    set (and ``check()`` raises LeaseLost) if the server ever no longer knows it."""

    def __init__(self, client: Client, lease_id: int, ttl_ms: int, keep_alive: bool) -> None:
        self.client = client
        self.id = lease_id
        self.ttl_ms = ttl_ms
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_alive, daemon=True,
                                        name=f"raftkv-lease-{lease_id}")
        if keep_alive:
            self._thread.start()

    def _keep_alive(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                self.client.keep_alive(self.id)
            except NotFound:
                self.lost.set()
                return
            except (ClientError, httpx.HTTPError):
                continue  # the next beat tries again (another node, maybe)

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost(f"lease {self.id} ran out")

    def close(self) -> None:
        """Stop keeping it alive and revoke it (its keys go with it)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        with contextlib.suppress(ClientError, httpx.HTTPError):
            self.client.revoke(self.id)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)
