"""The OS calls the disk store makes, in one place: positional writes, fsync of files and
directories, atomic replacement, deletion, and the translation of ``OSError`` into tidings'
``StorageFull`` / ``StorageError`` (keeping the original as ``__cause__``)."""

from __future__ import annotations

import errno
import os
import shutil

from ...errors import StorageError, StorageFull
from .format import TMP_SUFFIX

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_datasync = getattr(os, "fdatasync", os.fsync)


def storage_error(exc: OSError, doing: str, path: str | os.PathLike[str]) -> StorageError:
    """The tidings error for an OSError raised while ``doing`` something to ``path``."""
    reason = exc.strerror or str(exc)
    if exc.errno in FULL_ERRNOS:
        return StorageFull(
            f"storage full while {doing} {os.fspath(path)}: {reason}; free disk space "
            "(or raise the quota) and retry - nothing that was synced is lost"
        )
    return StorageError(f"{doing} {os.fspath(path)} failed: {reason}")


def write_at(fd: int, data: bytes | bytearray | memoryview, position: int) -> None:
    """Write all of ``data`` at ``position`` (one pwrite unless the OS writes less)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written


def open_file(path: str, create: bool = False) -> int:
    flags = os.O_RDWR | O_CLOEXEC | (os.O_CREAT | os.O_TRUNC if create else 0)
    return os.open(path, flags, 0o644)


def datasync(fd: int) -> None:
    _datasync(fd)


def fsync_path(path: str) -> None:
    """fsync a directory, or a file we do not keep open (like a segment index), by path."""
    fd = os.open(path, os.O_RDONLY | O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: temp file, fsync, rename, fsync directory."""
    tmp = path + TMP_SUFFIX
    fd = open_file(tmp, create=True)
    try:
        write_at(fd, data, 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        remove(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_path(os.path.dirname(path) or ".")


def remove(path: str) -> None:
    """Delete a file or a directory tree; missing is fine."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def remove_if_same(path: str, inode: int) -> None:
    """Delete ``path`` (a file or a tree) unless it is no longer the inode ``inode``."""
    try:
        if os.lstat(path).st_ino != inode:
            return
    except FileNotFoundError:
        return
    remove(path)


def make_dirs(path: str, dirty: set[str] | None = None, stop: str = "") -> None:
    """Create ``path`` and missing parents; collect each new entry's parent in ``dirty`` (those
    directories must be fsynced for the new entries to be durable), up to ``stop``."""
    missing: list[str] = []
    current = path
    while current and current != stop and not os.path.isdir(current):
        missing.append(current)
        current = os.path.dirname(current)
    for directory in reversed(missing):
        os.makedirs(directory, exist_ok=True)
        if dirty is not None:
            dirty.add(os.path.dirname(directory))
