"""In-process parts run as app.py runs them: ``run()`` in a task beside the test, then
stopped by cancelling it - and a part that died raises its error here, so a test never
passes over a dead loop (ARCHITECTURE.md rule 6)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol


class Part(Protocol):
    async def run(self) -> None: ...

    async def close(self) -> None: ...


class Running:
    """``part.run()`` in a task; ``stop()`` ends it and closes the part."""

    def __init__(self, part: Part) -> None:
        self.part = part
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(part.run())

    async def stop(self, close: bool = True) -> None:
        """Cancel ``run``; raise what it died of, if it died; then ``close`` the part."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if close:
            await self.part.close()


@contextlib.asynccontextmanager
async def running(part: Any) -> AsyncIterator[Any]:
    """``async with running(replicator):`` - the part runs for the block, then stops
    and closes (raising what its ``run`` died of, if it died)."""
    runner = Running(part)
    try:
        yield part
    finally:
        await runner.stop()
