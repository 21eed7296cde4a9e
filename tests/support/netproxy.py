"""TCP proxies for partition tests (TESTING.md: no iptables on these machines).

Each directed peer link gets its own proxy: node A's PEERS names the proxy's URL
instead of B's. ``cut`` drops every open connection through it and refuses new ones
until ``heal`` - a network partition as the nodes see it. The proxies run on their
own event loop in a background thread, so the test's code stays synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any


class _Proxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut = False
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.AbstractServer | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    def drop_all(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()


class ProxyNet:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxies: dict[str, _Proxy] = {}

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def add(self, name: str, target_port: int) -> int:
        """A proxy to ``target_port``; returns the port it listens on."""
        proxy = _Proxy(target_port)

        async def start() -> int:
            proxy.server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
            port: int = proxy.server.sockets[0].getsockname()[1]
            return port

        self.proxies[name] = proxy
        port: int = self._run(start())
        return port

    def cut(self, *names: str) -> None:
        def do() -> None:
            for name in names:
                self.proxies[name].cut = True
                self.proxies[name].drop_all()

        self.loop.call_soon_threadsafe(do)

    def heal(self, *names: str) -> None:
        def do() -> None:
            for name in names or tuple(self.proxies):
                self.proxies[name].cut = False

        self.loop.call_soon_threadsafe(do)

    def close(self) -> None:
        async def stop() -> None:
            for proxy in self.proxies.values():
                proxy.drop_all()
                if proxy.server is not None:
                    proxy.server.close()

        self._run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
