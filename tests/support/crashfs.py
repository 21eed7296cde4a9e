"""CrashFS: a file system double that knows what a power loss may keep.

It implements ``raftkv.storage.fs.FileSystem`` in memory and remembers, per file,
the content as of its last ``sync`` and the writes since, and per directory the
names as of its last ``sync_dir``. :meth:`CrashFS.crash` returns a new CrashFS
holding one state the disk could be in after power loss at this instant:

* directories hold only the names present at their last ``sync_dir`` (a file
  created or renamed since is gone, a file removed since is back);
* each file holds its synced content plus a prefix of the writes since, the last
  of them possibly torn at any byte (LevelDB's fault_injection_test idea).

Every mutating call runs ``on_op(name)`` afterwards, so a test can take crash
states at every step of a real write sequence.
"""

from __future__ import annotations

import errno
import posixpath
import random
import threading
from collections.abc import Callable


class _Inode:
    __slots__ = ("data", "pending", "synced")

    def __init__(self, data: bytes = b"") -> None:
        self.synced = bytes(data)
        self.data = bytearray(data)
        self.pending: list[tuple[str, bytes | int]] = []  # ("write", bytes) | ("truncate", size)


class CrashFile:
    def __init__(self, fs: CrashFS, inode: _Inode) -> None:
        self._fs = fs
        self._inode = inode

    def write(self, data: bytes) -> None:
        with self._fs.lock:
            if self._fs.space_left is not None:
                if len(data) > self._fs.space_left:
                    raise OSError(errno.ENOSPC, "No space left on device")
                self._fs.space_left -= len(data)
            self._inode.data += data
            self._inode.pending.append(("write", bytes(data)))
        self._fs.op("write")

    def sync(self) -> None:
        with self._fs.lock:
            if self._fs.fail_sync:
                raise OSError(errno.EIO, "Input/output error")
            self._inode.synced = bytes(self._inode.data)
            self._inode.pending.clear()
        self._fs.op("sync")

    def truncate(self, size: int) -> None:
        with self._fs.lock:
            del self._inode.data[size:]
            self._inode.pending.append(("truncate", size))
        self._fs.op("truncate")

    def size(self) -> int:
        return len(self._inode.data)

    def close(self) -> None:
        pass


class CrashFS:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.dirs: dict[str, dict[str, _Inode]] = {}
        self.durable: dict[str, dict[str, _Inode]] = {}
        self.on_op: Callable[[str], None] | None = None
        self.space_left: int | None = None
        self.fail_sync = False

    def op(self, name: str) -> None:
        if self.on_op is not None:
            self.on_op(name)

    def _split(self, path: str) -> tuple[dict[str, _Inode], str]:
        directory, name = posixpath.split(posixpath.normpath(path))
        if directory not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "No such directory", directory)
        return self.dirs[directory], name

    def _inode(self, path: str) -> _Inode:
        entries, name = self._split(path)
        if name not in entries:
            raise FileNotFoundError(errno.ENOENT, "No such file", path)
        return entries[name]

    # --- FileSystem ---------------------------------------------------------------

    def create(self, path: str) -> CrashFile:
        with self.lock:
            entries, name = self._split(path)
            inode = entries[name] = _Inode()
        self.op("create")
        return CrashFile(self, inode)

    def open_append(self, path: str) -> CrashFile:
        with self.lock:
            return CrashFile(self, self._inode(path))

    def read(self, path: str) -> bytes:
        with self.lock:
            return bytes(self._inode(path).data)

    def listdir(self, path: str) -> list[str]:
        with self.lock:
            return sorted(self.dirs[posixpath.normpath(path)])

    def exists(self, path: str) -> bool:
        with self.lock:
            path = posixpath.normpath(path)
            if path in self.dirs:
                return True
            directory, name = posixpath.split(path)
            return name in self.dirs.get(directory, {})

    def makedirs(self, path: str) -> None:
        # Directories are made durable at once: raftkv creates them only at start-up.
        with self.lock:
            path = posixpath.normpath(path)
            while path not in self.dirs and path not in ("/", ""):
                self.dirs[path] = {}
                self.durable[path] = {}
                path = posixpath.dirname(path)

    def rename(self, src: str, dst: str) -> None:
        with self.lock:
            src_entries, src_name = self._split(src)
            dst_entries, dst_name = self._split(dst)
            dst_entries[dst_name] = src_entries.pop(src_name)
        self.op("rename")

    def remove_dir(self, path: str) -> None:
        with self.lock:
            path = posixpath.normpath(path)
            if self.dirs[path]:
                raise OSError(39, "Directory not empty", path)
            del self.dirs[path]
            self.durable.pop(path, None)
            directory, name = posixpath.split(path)
            self.dirs.get(directory, {}).pop(name, None)

    def remove(self, path: str) -> None:
        with self.lock:
            entries, name = self._split(path)
            del entries[name]
        self.op("remove")

    def sync_dir(self, path: str) -> None:
        with self.lock:
            path = posixpath.normpath(path)
            self.durable[path] = dict(self.dirs[path])
        self.op("sync_dir")

    def truncate(self, path: str, size: int) -> None:
        with self.lock:
            CrashFile(self, self._inode(path)).truncate(size)

    def copy(self, src: str, dst: str) -> None:
        with self.lock:
            data = self.read(src)
            inode = self.create(dst)._inode
            inode.data += data
            inode.pending.append(("write", data))

    # --- crash --------------------------------------------------------------------

    def crash(self, rng: random.Random) -> CrashFS:
        """One state a power loss now could leave; this file system is unchanged."""
        with self.lock:
            image = CrashFS()
            survivors: dict[int, _Inode] = {}
            for directory, entries in self.durable.items():
                image.dirs[directory] = {}
                for name, inode in entries.items():
                    if id(inode) not in survivors:
                        survivors[id(inode)] = _Inode(self._survived(inode, rng))
                    image.dirs[directory][name] = survivors[id(inode)]
                image.durable[directory] = dict(image.dirs[directory])
            return image

    @staticmethod
    def _survived(inode: _Inode, rng: random.Random) -> bytes:
        data = bytearray(inode.synced)
        kept = rng.randint(0, len(inode.pending))
        for position, (kind, arg) in enumerate(inode.pending[:kept + 1]):
            if kind == "truncate":
                if position < kept:
                    del data[int(arg):]  # type: ignore[call-overload]
            elif position < kept:
                data += arg  # type: ignore[operator]
            else:  # the first write not fully kept may be torn anywhere
                data += arg[: rng.randint(0, len(arg))]  # type: ignore[index,arg-type]
        return bytes(data)
