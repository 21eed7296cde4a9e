"""The asyncio client: ``Client``'s API (``sync.py``), awaited.

    from raftkv.client import AsyncClient

    async with AsyncClient(["http://10.0.0.1:8080", "http://10.0.0.2:8080"]) as kv:
        await kv.put("config/mode", "blue")
        async with kv.lock("deploy") as hold:
            await kv.txn([hold.fence()], [{"op": "put", "key": "release", "value": "42"}])
        async for event in kv.watch(prefix="config/"):
            print(event.kind, event.key, event.value)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
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


class AsyncClient:
    """``Client`` for asyncio: the same endpoints, retries and idempotency keys."""

    def __init__(self, urls: str | Sequence[str] = "http://127.0.0.1:8080", *,
                 token: str | None = None, timeout_s: float = 10.0, retries: int = 3,
                 verify: Any = True, cacert: str | None = None, cert: str | None = None,
                 key: str | None = None) -> None:
        self.endpoints = Endpoints(urls)
        self.retries = retries
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout_s,
                                 verify=tls_verify(verify, cacert, cert, key))

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- keys --------------------------------------------------------------------

    async def get(self, key: str, consistency: str = "linearizable") -> p.KeyValue | None:
        return await self._send(p.get(key, consistency))

    async def put(self, key: str, value: bytes | str, *, ttl_ms: int | None = None,
            lease: int | None = None) -> int:
        """Store ``value``; its revision."""
        return await self._send(p.put(key, value, ttl_ms, lease))

    async def delete(self, key: str) -> bool:
        return await self._send(p.delete(key))

    async def scan(self, prefix: str = "", page_size: int = 1000
                   ) -> AsyncIterator[p.KeyValue]:
        """Every key under ``prefix``, in key order, a page at a time."""
        cursor = None
        while True:
            items, cursor = await self._send(p.list_page(prefix, cursor, page_size))
            for item in items:
                yield item
            if not cursor:
                return

    async def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
            failure: list[dict[str, Any]] | None = None) -> p.TxnResult:
        return await self._send(p.txn(compare, success, failure or []))

    # --- watch -------------------------------------------------------------------

    async def watch(self, *, key: str | None = None, prefix: str | None = None,
                    from_revision: int | None = None, progress: bool = False
                    ) -> AsyncIterator[p.WatchEvent]:
        """Every change to ``key`` or under ``prefix`` (from ``from_revision``, else from
        now), for ever: a broken stream (or a cut, for reading slowly) is resumed
        after the last revision seen, on another node if need be. Compacted: the
        server's history no longer reaches back to where it would resume."""
        path, params = p.watch_path(key, prefix)
        decoder = p.EventDecoder(None if from_revision is None else from_revision - 1)
        failures = 0
        while True:
            try:
                async for event in self._stream(path, params, decoder):
                    failures = 0
                    if progress or event.kind != "progress":
                        yield event
            except p.StreamEnded as ended:
                if ended.name == "compacted":
                    raise Compacted(str(ended), ended.data["revision"]) from None
            except (httpx.TransportError, Unavailable):
                failures += 1
                self.endpoints.failed()
                await asyncio.sleep(min(1.0, 0.05 * 2 ** failures))

    async def _stream(self, path: str, params: dict[str, Any], decoder: p.EventDecoder
                      ) -> AsyncIterator[p.WatchEvent]:
        url = await self._url()
        async with self._http.stream("GET", url + path, params=params,
                               headers=decoder.resume_headers(),
                               timeout=httpx.Timeout(self._http.timeout.connect or 10,
                                                     read=None)) as response:
            if response.status_code != 200:
                await response.aread()
                raise error_for(response.status_code, response.json())
            async for line in response.aiter_lines():
                event = decoder.feed_line(line)
                if event is not None:
                    yield event

    # --- leases, locks, elections ----------------------------------------------------

    async def lease(self, ttl_ms: int, *, keep_alive: bool = True) -> AsyncLease:
        """A new lease, kept alive by a task until closed (then revoked)."""
        return AsyncLease(self, await self._send(p.lease_grant(ttl_ms)), ttl_ms, keep_alive)

    async def keep_alive(self, lease: int) -> int:
        return await self._send(p.lease_keep_alive(lease))

    async def revoke(self, lease: int) -> bool:
        return await self._send(p.lease_revoke(lease))

    async def time_to_live(self, lease: int) -> dict[str, Any] | None:
        """The lease's TTL, the time left and its keys; None when it is gone."""
        return await self._send(p.lease_time_to_live(lease))

    async def leases(self) -> list[int]:
        return await self._send(p.lease_list())

    async def health(self) -> dict[str, Any]:
        """The health of the node the client talks to now."""
        return await self._send(p.health())

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, ttl_ms: int = 10_000, wait_s: float | None = None
                   ) -> AsyncIterator[p.Hold]:
        """Hold lock ``name`` for the ``with`` block; the Hold's ``token`` fences
        writes (``hold.fence()`` is the compare). WaitTimedOut after ``wait_s``."""
        async with await self.lease(ttl_ms) as lease:
            hold = await self._send(p.acquire("locks", name, lease.id, wait_ms=_ms(wait_s)),
                              timeout=None)
            try:
                yield hold
            finally:
                with contextlib.suppress(ClientError, httpx.HTTPError):
                    await self._send(p.release("locks", hold))

    @contextlib.asynccontextmanager
    async def campaign(self, name: str, value: bytes | str, *, ttl_ms: int = 10_000,
                       wait_s: float | None = None) -> AsyncIterator[p.Hold]:
        """Lead election ``name`` for the ``with`` block (resigning at its end)."""
        async with await self.lease(ttl_ms) as lease:
            hold = await self._send(p.acquire("elections", name, lease.id, value, _ms(wait_s)),
                              timeout=None)
            try:
                yield hold
            finally:
                with contextlib.suppress(ClientError, httpx.HTTPError):
                    await self._send(p.release("elections", hold))

    async def proclaim(self, hold: p.Hold, value: bytes | str) -> bool:
        return await self._send(p.proclaim(hold, value))

    async def lock_holder(self, name: str) -> p.Hold | None:
        return await self._send(p.holder("locks", name))

    async def leader(self, name: str) -> p.Hold | None:
        return await self._send(p.holder("elections", name))

    async def observe(self, name: str) -> AsyncIterator[p.Hold | None]:
        """The election's leader now, then at every change (None: nobody leads)."""
        decoder = p.EventDecoder(None)
        path = f"/v1/elections/{p._quote(name)}/observe"
        while True:
            try:
                async for event in self._stream(path, {}, decoder):
                    if event.kind == "leader":
                        yield decoder.leader
            except (httpx.TransportError, Unavailable, p.StreamEnded):
                self.endpoints.failed()
                await asyncio.sleep(0.1)

    # --- transport -----------------------------------------------------------------

    async def _send(self, call: p.Call[T], timeout: TimeoutTypes | UseClientDefault =
              USE_CLIENT_DEFAULT) -> T:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            url = await self._url()
            try:
                response = await self._http.request(call.method, url + call.path, params=call.params,
                                              json=call.body, headers=call.headers,
                                              timeout=timeout)
            except httpx.TransportError as exc:
                last = exc
                self.endpoints.failed()
                await asyncio.sleep(0.05 * 2 ** attempt)
                continue
            body = response.json() if response.content else {}
            if response.status_code in (503, 504) and attempt < self.retries:
                last = error_for(response.status_code, body)
                self.endpoints.failed()
                await asyncio.sleep(0.05 * 2 ** attempt)
                continue
            return call.parse(response.status_code, body)
        raise Unavailable(f"no node answered: {last}") from last

    async def _url(self) -> str:
        if not self.endpoints.probed:
            self.endpoints.found(await asyncio.gather(
                *(self._state_of(url) for url in self.endpoints.urls)))
        return self.endpoints.current()

    async def _state_of(self, url: str) -> str | None:
        try:
            return str((await self._http.get(url + "/health", timeout=2)).json()["state"])
        except (httpx.HTTPError, ValueError, KeyError):
            return None


class AsyncLease:
    """A lease kept alive by a task every third of its TTL (``lost``: it ran out)."""

    def __init__(self, client: AsyncClient, lease_id: int, ttl_ms: int, keep_alive: bool
                 ) -> None:
        self.client = client
        self.id = lease_id
        self.ttl_ms = ttl_ms
        self.lost = asyncio.Event()
        self._task = asyncio.create_task(self._keep_alive()) if keep_alive else None

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                await self.client.keep_alive(self.id)
            except NotFound:
                self.lost.set()
                return
            except (ClientError, httpx.HTTPError):
                continue  # the next beat tries again (another node, maybe)

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost(f"lease {self.id} ran out")

    async def close(self) -> None:
        """Stop keeping it alive and revoke it (its keys go with it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(ClientError, httpx.HTTPError):
            await self.client.revoke(self.id)

    async def __aenter__(self) -> AsyncLease:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)
