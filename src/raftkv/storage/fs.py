"""The file-system interface storage is written against, and its real implementation.

Everything durable goes through :class:`FileSystem`, so tests can swap in a double
(``tests/support/crashfs.py``) that remembers what was synced and can show every
state a power loss could leave behind. The contract each method promises is the
POSIX one that double models:

* ``File.write`` appends to the page cache; nothing is durable until ``File.sync``.
* A new name (``create``, ``rename``, ``remove``) is durable only after
  ``sync_dir`` of its directory.
* Files are created 0600 and directories 0700: the data is the user's.
"""

from __future__ import annotations

import os
import shutil
from typing import Protocol

FILE_MODE = 0o600
DIR_MODE = 0o700


class File(Protocol):
    """An open file, written only at its end."""

    def write(self, data: bytes) -> None:
        """Append all of ``data`` (raises OSError, e.g. ENOSPC, on failure)."""

    def sync(self) -> None:
        """Make everything written so far durable (fdatasync)."""

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes; later writes append from there."""

    def size(self) -> int: ...

    def close(self) -> None: ...


class FileSystem(Protocol):
    def create(self, path: str) -> File:
        """A new empty file opened for appending (replacing any file of that name)."""

    def open_append(self, path: str) -> File:
        """An existing file opened for appending at its end."""

    def read(self, path: str) -> bytes: ...

    def listdir(self, path: str) -> list[str]: ...

    def exists(self, path: str) -> bool: ...

    def makedirs(self, path: str) -> None: ...

    def rename(self, src: str, dst: str) -> None: ...

    def remove(self, path: str) -> None: ...

    def remove_dir(self, path: str) -> None:
        """Remove an empty directory."""

    def sync_dir(self, path: str) -> None: ...

    def truncate(self, path: str, size: int) -> None: ...

    def copy(self, src: str, dst: str) -> None: ...


def write_atomically(fs: FileSystem, directory: str, name: str, data: bytes) -> None:
    """``directory/name`` holds ``data`` whole, or its earlier content: written to
    ``name.tmp``, fsynced, renamed over ``name``, then the directory fsynced."""
    final = os.path.join(directory, name)
    f = fs.create(final + ".tmp")
    try:
        f.write(data)
        f.sync()
    finally:
        f.close()
    fs.rename(final + ".tmp", final)
    fs.sync_dir(directory)


class OsFile:
    __slots__ = ("_fd", "_size")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            self._size += written
            view = view[written:]

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        os.lseek(self._fd, size, os.SEEK_SET)
        self._size = size

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        os.close(self._fd)


class OsFileSystem:
    """The real thing: thin wrappers over ``os`` with the modes and flags storage needs."""

    def create(self, path: str) -> OsFile:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC,
                     FILE_MODE)
        return OsFile(fd)

    def open_append(self, path: str) -> OsFile:
        return OsFile(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def remove(self, path: str) -> None:
        os.remove(path)

    def remove_dir(self, path: str) -> None:
        os.rmdir(path)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def truncate(self, path: str, size: int) -> None:
        os.truncate(path, size)

    def copy(self, src: str, dst: str) -> None:
        shutil.copyfile(src, dst)
        os.chmod(dst, FILE_MODE)
