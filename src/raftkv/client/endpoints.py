"""Which node a client talks to: the leader when one is known (writes then skip the
forwarding hop), else the next URL after one that failed. No I/O: the sync and the
asyncio client each probe ``/health`` their own way and report here."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any


class Endpoints:
    def __init__(self, urls: str | Sequence[str]) -> None:
        listed = [urls] if isinstance(urls, str) else list(urls)
        self.urls = [url.rstrip("/") for url in listed]
        if not self.urls:
            raise ValueError("give at least one URL")
        self._index = 0
        self.probed = len(self.urls) == 1  # one URL: nothing to choose

    def current(self) -> str:
        return self.urls[self._index]

    def failed(self) -> None:
        """The current node did not answer (or had no leader): try the next, and look
        for the leader again before long."""
        self._index = (self._index + 1) % len(self.urls)
        self.probed = len(self.urls) == 1

    def found(self, states: Sequence[str | None]) -> None:
        """What probing each URL found ("leader", "follower" or None: unreachable)."""
        self.probed = True
        for index, state in enumerate(states):
            if state == "leader":
                self._index = index
                return
        for index, state in enumerate(states):
            if state is not None:
                self._index = index
                return


def tls_verify(verify: Any, cacert: str | None, cert: str | None, key: str | None) -> Any:
    """httpx's ``verify`` for a node: ``verify`` as given (True: the system's CAs), or a
    context trusting ``cacert`` and presenting the client certificate ``cert``/``key``."""
    if cacert is None and cert is None:
        return verify
    ctx = ssl.create_default_context(cafile=cacert)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx
