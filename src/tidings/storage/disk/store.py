"""DiskStore: the durable Store, on a directory of segmented partition logs, group journals
and a catalogue (layout and formats in format.py and docs/design/storage.md).

Threading (the Store contract): every method but ``sync`` runs on the event-loop thread and
never fsyncs; writes are one ``pwrite`` a call and mark the file in the shared dirty set.
``sync`` runs on the flusher thread: it takes the dirty set under its lock, fsyncs the files
and directories, writes the catalogue if it changed, and only then deletes trimmed segments
and dropped topics. A failed fsync leaves the store refusing writes until it is reopened (the
kernel may have dropped the unwritten pages; recovery on reopen sorts out what is on disk).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

from ...errors import NotFound, StorageError
from ...model import GroupSpec, Record, TopicSpec
from ..base import DELETIONS, RecoveryReport
from ..cursor import GroupCursor
from . import catalogue, files
from .durability import Durability
from .format import (
    CATALOGUE_FILE,
    CLEAN_FILE,
    CLEAN_MAGIC,
    DEFAULT_JOURNAL_COMPACT,
    DEFAULT_SEGMENT_BYTES,
    DELETIONS_DIR,
    FILE_HEADER,
    GROUPS_DIR,
    LOCK_FILE,
    TOPICS_DIR,
    TRASH_DIR,
    VERSION,
    fs_name,
)
from .journal import GroupJournal
from .partition_log import PartitionLog
from .recovery import Recovery

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]  # not on Windows: checked before each use

_CLEAN = FILE_HEADER.pack(CLEAN_MAGIC, VERSION, 0, 0)


class DiskStore:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        journal_compact: int = DEFAULT_JOURNAL_COMPACT,
        verify: bool = False,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.verify = verify  # open scans every segment, not only the tails (store repair)
        self.segment_bytes = segment_bytes
        self.journal_compact = journal_compact
        self._durability = Durability()
        self._sync_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._failed: str | None = None
        self._topics: dict[str, TopicSpec] = {}
        self._groups: dict[str, dict[str, GroupSpec]] = {}
        self._logs: dict[str, list[PartitionLog]] = {}
        self._journals: dict[tuple[str, str], GroupJournal] = {}
        self._trash_seq = 0

    def __repr__(self) -> str:
        return f"DiskStore({self.path!r})"

    def _topic_dir(self, topic: str) -> str:
        return os.path.join(self.path, TOPICS_DIR, fs_name(topic))

    def _group_dir(self, topic: str, group: str) -> str:
        if group == DELETIONS:
            return os.path.join(self._topic_dir(topic), DELETIONS_DIR)
        return os.path.join(self._topic_dir(topic), GROUPS_DIR, fs_name(group))

    # -- lifecycle

    def open(self) -> RecoveryReport:
        if self._lock_fd is not None:
            raise StorageError(f"{self.path} is already open in this DiskStore")
        started = time.perf_counter()
        report = RecoveryReport()
        recovery = Recovery(self.path, report, verify=self.verify)
        try:
            self._acquire()
            clean = self._take_clean_marker()
            loaded = self._load_catalogue()
            for entry in os.listdir(os.path.join(self.path, TRASH_DIR)):
                files.remove(os.path.join(self.path, TRASH_DIR, entry))
            for spec in loaded.topics:
                self._open_topic(spec, clean, recovery)
            for group in loaded.groups:
                if group.topic in self._topics:
                    self._groups[group.topic][group.name] = group
            for topic in self._topics:
                self._open_groups(topic, report.truncated)
            keep = {fs_name(t) for t in self._topics}
            for entry in os.listdir(os.path.join(self.path, TOPICS_DIR)):
                if entry not in keep:  # created but never synced, or dropped and synced
                    files.remove(os.path.join(self.path, TOPICS_DIR, entry))
        except OSError as exc:
            self._release()
            raise files.storage_error(exc, "opening store", self.path) from exc
        except BaseException:
            self._release()
            raise
        if not clean or report.truncated or report.lost:
            for logs in self._logs.values():
                for log in logs:
                    log.mark_all()
            for journal in self._journals.values():
                journal.mark()
            self.sync()
        report.topics = len(self._topics)
        report.messages = sum(
            log.next_offset - log.bounds()[0] for logs in self._logs.values() for log in logs
        )
        report.seconds = time.perf_counter() - started
        return report

    def _acquire(self) -> None:
        for sub in ("", TOPICS_DIR, TRASH_DIR):
            os.makedirs(os.path.join(self.path, sub), exist_ok=True)
        fd = files.open_file(os.path.join(self.path, LOCK_FILE), create=True)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StorageError(
                    f"{self.path} is in use by another process: stop it or use another directory"
                ) from None
        self._lock_fd = fd

    def _take_clean_marker(self) -> bool:
        path = os.path.join(self.path, CLEAN_FILE)
        try:
            with open(path, "rb") as f:
                clean = f.read() == _CLEAN
        except FileNotFoundError:
            return False
        os.unlink(path)  # from now on a crash is an unclean shutdown
        files.fsync_path(self.path)
        return clean

    def _load_catalogue(self) -> catalogue.Catalogue:
        path = os.path.join(self.path, CATALOGUE_FILE)
        try:
            with open(path, "rb") as f:
                return catalogue.decode(f.read(), path)
        except FileNotFoundError:
            if os.listdir(os.path.join(self.path, TOPICS_DIR)):
                raise StorageError(
                    f"{path} is missing but {self.path} holds topics: restore the catalogue "
                    "from a backup (the store will not guess which topics it had)"
                ) from None
            files.atomic_write(path, catalogue.encode(catalogue.Catalogue()))  # a new store
            files.fsync_path(os.path.dirname(self.path))
            return catalogue.Catalogue()

    def _open_topic(self, spec: TopicSpec, clean: bool, recovery: Recovery) -> None:
        self._topics[spec.name] = spec
        self._groups[spec.name] = {}
        logs = self._logs[spec.name] = []
        directory = self._topic_dir(spec.name)
        while len(logs) < spec.partitions or os.path.isdir(os.path.join(directory, str(len(logs)))):
            name = f"{spec.name}/{len(logs)}"
            part_dir = os.path.join(directory, str(len(logs)))
            if os.path.isdir(part_dir):
                log = PartitionLog.open(
                    name, part_dir, self._durability, self.segment_bytes, clean, recovery
                )
            else:
                log = self._create_partition(name, part_dir)
            logs.append(log)

    def _create_partition(self, name: str, directory: str) -> PartitionLog:
        dirty: set[str] = set()
        files.make_dirs(directory, dirty, stop=self.path)
        self._durability.changed(*dirty)
        return PartitionLog.create(name, directory, self._durability, self.segment_bytes)

    def _open_groups(self, topic: str, report: list[str]) -> None:
        deletions = self._group_dir(topic, DELETIONS)
        if os.path.isdir(deletions):
            self._journals[(topic, DELETIONS)] = GroupJournal.open(
                deletions, self._durability, self.journal_compact, report
            )
        directory = os.path.join(self._topic_dir(topic), GROUPS_DIR)
        if not os.path.isdir(directory):
            return
        declared = {fs_name(g): g for g in self._groups[topic]}
        for entry in os.listdir(directory):
            path = os.path.join(directory, entry)
            if entry in declared:
                self._journals[(topic, declared[entry])] = GroupJournal.open(
                    path, self._durability, self.journal_compact, report
                )
            else:
                files.remove(path)

    def close(self) -> None:
        """Sync, write the tail indexes and the clean-shutdown marker, release the directory."""
        if self._lock_fd is None:
            return
        try:
            if self._failed is None:  # else: leave it to recovery, as after a crash
                self.sync()
                try:
                    for logs in self._logs.values():
                        for log in logs:
                            log.seal()
                    files.atomic_write(os.path.join(self.path, CLEAN_FILE), _CLEAN)
                except OSError:
                    pass  # no marker: the next open scans the tails, nothing is lost
        finally:
            with self._sync_lock:
                self._release()

    def _release(self) -> None:
        for logs in self._logs.values():
            for log in logs:
                log.close()
        for journal in self._journals.values():
            journal.close()
        self._topics, self._groups, self._logs, self._journals = {}, {}, {}, {}
        self._durability.take().close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def sync(self) -> None:
        with self._sync_lock:
            if self._failed is not None:
                raise StorageError(self._failed)
            if self._lock_fd is None:
                return
            batch = self._durability.take()
            try:
                for fd, path in batch.fds:
                    self._fsync(fd, path)
                for path in batch.paths:
                    try:
                        files.fsync_path(path)
                    except OSError:
                        pass  # an index: a missing or torn one is rebuilt by a scan
                for path in batch.dirs:
                    try:
                        files.fsync_path(path)
                    except FileNotFoundError:
                        pass  # dropped since
                    except OSError as exc:
                        self._fail(exc, path)
                if batch.catalogue is not None:
                    path = os.path.join(self.path, CATALOGUE_FILE)
                    try:
                        files.atomic_write(path, batch.catalogue)
                    except OSError as exc:
                        self._durability.restore_catalogue(batch.catalogue)
                        raise files.storage_error(exc, "writing", path) from exc
            finally:
                batch.close()
            for path, inode in batch.deletes:
                try:
                    files.remove_if_same(path, inode)
                except OSError:
                    pass  # left over: removed at the next open (trash) or harmless

    def _fsync(self, fd: int, path: str) -> None:
        try:
            files.datasync(fd)
        except OSError as exc:
            self._fail(exc, path)

    def _fail(self, exc: OSError, path: str) -> None:
        error = files.storage_error(exc, "syncing", path)
        self._failed = (
            f"{error.message}; the store refuses writes until it is reopened "
            "(recovery then finds out what reached the disk)"
        )
        raise type(error)(self._failed) from exc

    def _writable(self) -> None:
        if self._failed is not None:
            raise StorageError(self._failed)
        if self._lock_fd is None:
            raise StorageError(f"{self} is not open: call open() first")

    # -- catalogue

    def _save_catalogue(self) -> None:
        groups = [g for specs in self._groups.values() for g in specs.values()]
        data = catalogue.encode(catalogue.Catalogue(list(self._topics.values()), groups))
        self._durability.set_catalogue(data)

    def _to_trash(self, path: str) -> None:
        if not os.path.exists(path):
            return
        self._trash_seq += 1
        trash = os.path.join(self.path, TRASH_DIR)
        target = os.path.join(trash, f"{time.time_ns()}-{self._trash_seq}")
        try:
            os.rename(path, target)
        except OSError as exc:
            raise files.storage_error(exc, "removing", path) from exc
        self._durability.changed(os.path.dirname(path), trash)
        self._durability.delete_later(target)

    def put_topic(self, spec: TopicSpec) -> None:
        self._writable()
        logs = self._logs.setdefault(spec.name, [])
        directory = self._topic_dir(spec.name)
        while len(logs) < spec.partitions:
            part_dir = os.path.join(directory, str(len(logs)))
            try:
                logs.append(self._create_partition(f"{spec.name}/{len(logs)}", part_dir))
            except OSError as exc:
                raise files.storage_error(exc, "creating", part_dir) from exc
        self._topics[spec.name] = spec
        self._groups.setdefault(spec.name, {})
        self._save_catalogue()

    def drop_topic(self, name: str) -> None:
        self._writable()
        self._topics.pop(name, None)
        self._groups.pop(name, None)
        for log in self._logs.pop(name, []):
            log.close()
        for key in [key for key in self._journals if key[0] == name]:
            self._journals.pop(key).close()
        self._to_trash(self._topic_dir(name))
        self._save_catalogue()

    def topics(self) -> list[TopicSpec]:
        return list(self._topics.values())

    def put_group(self, spec: GroupSpec) -> None:
        self._writable()
        self._groups.setdefault(spec.topic, {})[spec.name] = spec
        self._save_catalogue()

    def drop_group(self, topic: str, group: str) -> None:
        self._writable()
        self._groups.get(topic, {}).pop(group, None)
        journal = self._journals.pop((topic, group), None)
        if journal is not None:
            journal.close()
        self._to_trash(self._group_dir(topic, group))
        self._save_catalogue()

    def groups(self, topic: str) -> list[GroupSpec]:
        return list(self._groups.get(topic, {}).values())

    # -- log

    def _log(self, topic: str, partition: int) -> PartitionLog:
        try:
            if partition >= 0:
                return self._logs[topic][partition]
        except (KeyError, IndexError):
            pass
        raise NotFound(f"topic {topic!r} has no partition {partition}")

    def append(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        if self._failed is not None:
            raise StorageError(self._failed)
        self._log(topic, partition).append(records)

    def read(
        self, topic: str, partition: int, offset: int, max_count: int, max_bytes: int = 1 << 20
    ) -> list[Record]:
        return self._log(topic, partition).read(offset, max_count, max_bytes)

    def bounds(self, topic: str, partition: int) -> tuple[int, int]:
        return self._log(topic, partition).bounds()

    def size(self, topic: str, partition: int) -> int:
        return self._log(topic, partition).size()

    def trim(self, topic: str, partition: int, before: int) -> None:
        self._log(topic, partition).trim(before)

    def offset_at(self, topic: str, partition: int, timestamp: float) -> int:
        return self._log(topic, partition).offset_at(timestamp)

    # -- group state

    def _journal(self, topic: str, group: str) -> GroupJournal:
        self._writable()
        journal = self._journals.get((topic, group))
        if journal is None:
            journal = self._journals[(topic, group)] = GroupJournal(
                self._group_dir(topic, group), self._durability, self.journal_compact
            )
        return journal

    def save_acks(self, topic: str, group: str, partition: int, offsets: Sequence[int]) -> None:
        self._journal(topic, group).save_acks(partition, offsets)

    def save_floor(self, topic: str, group: str, partition: int, floor: int) -> None:
        self._journal(topic, group).save_floor(partition, floor)

    def forget_acks_from(self, topic: str, group: str, partition: int, end: int) -> None:
        self._journal(topic, group).forget_from(partition, end)

    def load_cursors(self, topic: str, group: str) -> dict[int, GroupCursor]:
        journal = self._journals.get((topic, group))
        return journal.load() if journal is not None else {}
