"""A scheduled backup that cannot be taken (no leader to confirm it is current) is
logged and tried again at the next interval; it never stops the node."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

from raftkv.config import BackupConfig
from raftkv.errors import Unavailable
from raftkv.service.backup import Schedule
from raftkv.storage.fs import OsFileSystem


def test_a_failed_scheduled_backup_is_logged_and_retried(tmp_path, caplog):
    attempts = []

    def read_barrier(consistency):
        attempts.append(consistency)
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(Unavailable("no leader"))
        return failed

    service = SimpleNamespace(replicator=SimpleNamespace(read_barrier=read_barrier))
    schedule = Schedule(service, BackupConfig(str(tmp_path), interval_s=0.01, retain=2),  # type: ignore[arg-type]
                        OsFileSystem())

    async def run_a_while() -> None:
        task = asyncio.ensure_future(schedule.run())
        await asyncio.sleep(0.2)
        assert not task.done()  # still running: the failures did not end it
        task.cancel()

    with caplog.at_level(logging.ERROR, logger="raftkv.backup"):
        asyncio.run(run_a_while())
    assert len(attempts) >= 3
    assert "scheduled backup failed: no leader" in caplog.text
    assert list(tmp_path.iterdir()) == []
