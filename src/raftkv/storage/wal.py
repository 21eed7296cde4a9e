"""The write-ahead log: segment files of framed records, and group commit.

:class:`SegmentedLog` is synchronous file work, run on one thread at a time.
:class:`WalWriter` is the event-loop side: it gathers records from many writers,
hands each batch to a dedicated I/O thread (write + fdatasync), and reports the
batch durable through a callback, so one fsync covers every record that arrived
meanwhile. It never waits on a timer for a batch to fill: a record that finds the
log idle is flushed at once, and records that arrive during that flush form the
next batch. Loss windows of each fsync policy are in DESIGN.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import errno
import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from raftkv.errors import DiskFullError, StorageError
from raftkv.storage import failpoints
from raftkv.storage.fs import File, FileSystem

log = logging.getLogger("raftkv.storage")

SEGMENT_SUFFIX = ".wal"
DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024

T = TypeVar("T")


class FsyncPolicy(enum.StrEnum):
    ALWAYS = "always"
    EVERYSEC = "everysec"
    NO = "no"


def segment_name(first_index: int) -> str:
    return f"{first_index:020d}{SEGMENT_SUFFIX}"


def segment_first_index(name: str) -> int:
    return int(name[: -len(SEGMENT_SUFFIX)])


def list_segments(fs: FileSystem, directory: str) -> list[str]:
    return sorted(n for n in fs.listdir(directory) if n.endswith(SEGMENT_SUFFIX)
                  and n[: -len(SEGMENT_SUFFIX)].isdigit())


class FsyncFailed(Exception):
    """An fsync error: always fatal to the writer, whatever its errno."""


class SegmentedLog:
    """Appends to the newest segment; starts a new one past ``segment_max_bytes``."""

    def __init__(self, fs: FileSystem, directory: str, segment_max_bytes: int) -> None:
        self.fs = fs
        self.directory = directory
        self.segment_max_bytes = segment_max_bytes
        self._file: File | None = None  # opened at the first write: reading opens nothing
        segments = list_segments(fs, directory)
        self._segment: str | None = segments[-1] if segments else None

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def write(self, data: bytes, first_index: int) -> int:
        """Append ``data`` (whole records starting with entry ``first_index``); returns the
        size the current segment had before, for rolling back a failed write."""
        if self._file is None and self._segment is not None:
            self._file = self.fs.open_append(self._path(self._segment))
        if self._file is None or self._file.size() >= self.segment_max_bytes:
            self._roll(first_index)
        assert self._file is not None
        before = self._file.size()
        failpoints.hit("wal.before_write")
        try:
            self._file.write(data)
        except OSError:
            self._file.truncate(before)
            raise
        failpoints.hit("wal.after_write")
        return before

    def sync(self) -> None:
        if self._file is not None:
            failpoints.hit("wal.before_fsync")
            self._file.sync()
            failpoints.hit("wal.after_fsync")

    def _roll(self, first_index: int) -> None:
        if self._file is not None:
            self._file.sync()  # a sealed segment is complete on disk
            self._file.close()
        # Names sort in write order, which replay follows. After a Raft conflict the
        # first index written can be below the current segment's (or equal an older
        # one's); such a segment takes the next name up instead. A name is thus at or
        # above the first index written to its segment, and above every entry before
        # it that is still in the log - what ``remove_covered`` relies on.
        newest = segment_first_index(self._segment) if self._segment is not None else 0
        self._segment = segment_name(max(first_index, newest + 1))
        self._file = self.fs.create(self._path(self._segment))
        if not failpoints.enabled("skip_dir_fsync"):
            self.fs.sync_dir(self.directory)

    def remove_covered(self, index: int) -> int:
        """Remove sealed segments whose every entry still in the log is at or below
        ``index`` (those below the next segment's name: see ``_roll``)."""
        segments = list_segments(self.fs, self.directory)
        removed = 0
        for name, successor in itertools.pairwise(segments):
            if segment_first_index(successor) - 1 <= index and name != self._segment:
                failpoints.hit("wal.before_truncate")
                self.fs.remove(self._path(name))
                removed += 1
        if removed:
            self.fs.sync_dir(self.directory)
        return removed

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class AppendLog(Protocol):
    """What group commit writes to (a ``LogStore``): framed records, then an fsync."""

    def write(self, data: bytes, first_index: int) -> int: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class WalWriter(Generic[T]):
    """Group commit. ``append`` queues a framed record with an item; ``on_durable``
    receives items in append order once their records are durable under the policy;
    ``on_failed`` receives items whose write failed, with the error."""

    def __init__(self, log: AppendLog, policy: FsyncPolicy,
                 on_durable: Callable[[list[T]], None],
                 on_failed: Callable[[list[T], StorageError], None],
                 observe_batch: Callable[[float | None, int], None] | None = None) -> None:
        self.log = log
        self.policy = policy
        self._on_durable = on_durable
        self._on_failed = on_failed
        self._observe_batch = observe_batch  # (fsync seconds or None, records)
        self._records: list[bytes] = []
        self._items: list[T] = []
        self._first_index = 0
        self._busy = False
        self._dirty = False
        self._failed: StorageError | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._dead = asyncio.Event()  # set with _failed
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wal")
        self._loop = asyncio.get_running_loop()
        self.fsyncs = 0
        self.records_synced = 0

    @property
    def failed(self) -> StorageError | None:
        return self._failed

    def append(self, index: int, record: bytes, item: T) -> None:
        if self._failed is not None:
            raise self._failed
        if not self._records:
            self._first_index = index
        self._records.append(record)
        self._items.append(item)
        if not self._busy:
            self._start()

    def _start(self) -> None:
        # call_soon, not a timer: the flush runs at the end of this loop iteration, so
        # every writer woken in the same iteration (e.g. by the previous batch's acks)
        # joins the batch, and a lone writer still waits for nothing but its own fsync.
        self._busy = True
        self._idle.clear()
        if self.policy is FsyncPolicy.ALWAYS and not failpoints.enabled("ack_before_fsync"):
            self._loop.call_soon(self._flush_in_thread)
        else:
            self._loop.call_soon(self._flush_here)

    def _take(self) -> tuple[bytes, int, list[T]]:
        data = b"".join(self._records)
        batch = (data, self._first_index, self._items)
        self._records, self._items = [], []
        return batch

    def _flush_in_thread(self) -> None:
        data, first_index, items = self._take()
        future = self._loop.run_in_executor(self._executor, self._write_and_sync, data,
                                            first_index, len(items))
        future.add_done_callback(lambda f: self._done(f.exception(), items))

    def _write_and_sync(self, data: bytes, first_index: int, count: int) -> None:
        self.log.write(data, first_index)
        started = time.perf_counter()
        try:
            self.log.sync()
        except OSError as exc:
            raise FsyncFailed(exc) from exc
        self.fsyncs += 1
        self.records_synced += count
        if self._observe_batch is not None:
            self._observe_batch(time.perf_counter() - started, count)

    def _flush_here(self) -> None:
        """``everysec`` / ``no``: write on the loop (page cache only) and ack."""
        data, first_index, items = self._take()
        try:
            self.log.write(data, first_index)
        except OSError as exc:
            self._done(exc, items)
            return
        self._dirty = True
        if self._observe_batch is not None:
            self._observe_batch(None, len(items))
        self._done(None, items)

    def _done(self, exc: BaseException | None, items: list[T]) -> None:
        self._busy = False
        if exc is None:
            try:
                self._on_durable(items)
            except Exception as bug:  # e.g. apply raised: stop writing rather than hang
                log.critical("applying a durable batch failed; refusing further writes",
                             exc_info=bug)
                error = self._die(StorageError(f"applying a logged write failed: {bug!r}"))
                self._fail_with_queued(items, error)
            if self._records:
                self._start()
        else:
            self._fail_with_queued(items, self._classify(exc))
        if not self._busy:
            self._idle.set()

    def _fail_with_queued(self, items: list[T], error: StorageError) -> None:
        # Records queued behind a failed batch carry the indexes that follow it:
        # they fail with it, so the log never gets a gap.
        _, _, queued = self._take()
        self._on_failed(items + queued, error)

    def _classify(self, exc: BaseException) -> StorageError:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC and self._failed is None:
            # The failed batch was cut off the segment again, so the log is intact:
            # later writes may succeed once space is freed.
            return DiskFullError("disk full: the write was not applied")
        # An fsync error leaves the page cache state unknown (PostgreSQL's "fsyncgate"):
        # never retry and acknowledge; fail this and every later write.
        return self._die(StorageError(f"write-ahead log failed: {exc}"))

    def _die(self, error: StorageError) -> StorageError:
        if self._failed is None:
            self._failed = error
            self._dead.set()
        return self._failed

    async def run(self) -> None:
        """Fsync once a second under ``everysec``; raise the error that killed the
        writer (a failed fsync or apply), so whoever runs it stops the node."""
        interval_s = 1.0 if self.policy is FsyncPolicy.EVERYSEC else None
        while True:
            try:
                await asyncio.wait_for(self._dead.wait(), interval_s)
            except TimeoutError:
                await self.sync_now()
                continue
            assert self._failed is not None
            raise self._failed

    async def sync_now(self) -> None:
        """Fsync what was written so far (``everysec``'s tick, and shutdown)."""
        if not self._dirty or self._failed is not None:
            return
        self._dirty = False
        try:
            await self._loop.run_in_executor(self._executor, self.log.sync)
        except OSError as exc:
            self._classify(FsyncFailed(exc))

    async def drain(self) -> None:
        """Wait until every queued record is written (and synced under ``always``)."""
        while not self._idle.is_set():
            await self._idle.wait()

    async def close(self) -> None:
        """Drain, fsync whatever the policy left unsynced, stop the thread, close the file."""
        await self.drain()
        self._dirty = True
        await self.sync_now()
        await self._loop.run_in_executor(self._executor, self.log.close)
        self._executor.shutdown(wait=True)

    def run_blocking(self, fn: Callable[[], object]) -> asyncio.Future[object]:
        """Run file work (e.g. removing covered segments) on the WAL's own thread."""
        return self._loop.run_in_executor(self._executor, fn)
