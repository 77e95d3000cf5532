"""What the next ``sync()`` must make durable: the dirty set shared by the event-loop thread,
which writes and marks, and the flusher thread, which takes a snapshot and fsyncs it.

The event-loop thread never fsyncs. It marks the open files it wrote (by fd), files to fsync by
path (segment indexes), directories whose entries changed, the catalogue bytes to persist, and
paths to delete once what replaced them is durable. :meth:`Durability.take` swaps all of it out
under the lock and dups the fds, so the flusher can fsync while appends go on and while files
are closed concurrently (a closed fd is never fsynced, a reused fd number never confused).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field


@dataclass
class SyncBatch:
    fds: list[tuple[int, str]] = field(default_factory=list)  # dup'd fds: close them after
    paths: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    catalogue: bytes | None = None
    deletes: list[tuple[str, int]] = field(default_factory=list)  # (path, inode)

    def close(self) -> None:
        for fd, _ in self.fds:
            os.close(fd)
        self.fds.clear()


class Durability:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._fds: dict[int, str] = {}
        self._paths: set[str] = set()
        self._dirs: set[str] = set()
        self._catalogue: bytes | None = None
        self._deletes: list[tuple[str, int]] = []

    def wrote(self, fd: int, path: str) -> None:
        """``fd`` (kept open by the caller) has data the next sync must fsync."""
        with self.lock:
            self._fds[fd] = path

    def forget(self, fd: int) -> None:
        """Call before closing ``fd``: its data no longer needs syncing (deleted or replaced)."""
        with self.lock:
            self._fds.pop(fd, None)

    def wrote_path(self, path: str) -> None:
        with self.lock:
            self._paths.add(path)

    def changed(self, *directories: str) -> None:
        """Entries of these directories were created, renamed or removed."""
        with self.lock:
            self._dirs.update(directories)

    def set_catalogue(self, data: bytes) -> None:
        with self.lock:
            self._catalogue = data

    def restore_catalogue(self, data: bytes) -> None:
        """A sync failed to write ``data``: keep it pending unless something newer came."""
        with self.lock:
            if self._catalogue is None:
                self._catalogue = data

    def delete_later(self, *paths: str) -> None:
        """Delete these after the next sync made what replaced them durable. The inode is
        remembered: should a new file take the same path meanwhile, it is left alone."""
        found = []
        for path in paths:
            try:
                found.append((path, os.lstat(path).st_ino))
            except FileNotFoundError:
                pass
        with self.lock:
            self._deletes.extend(found)

    def take(self) -> SyncBatch:
        """Everything marked so far, with dup'd fds; the marks start afresh."""
        batch = SyncBatch()
        with self.lock:
            try:
                for fd, path in self._fds.items():
                    batch.fds.append((os.dup(fd), path))
            except OSError:
                batch.close()
                raise
            self._fds.clear()
            batch.paths = sorted(self._paths)
            batch.dirs = sorted(self._dirs)
            batch.catalogue = self._catalogue
            batch.deletes = self._deletes
            self._paths = set()
            self._dirs = set()
            self._catalogue = None
            self._deletes = []
        return batch
