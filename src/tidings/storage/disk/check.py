"""``tidings store check`` and ``tidings store repair``: every segment of a stopped store,
frame by frame (not only the tails a normal start scans).

``check`` changes nothing and reports what a repair would cut: damaged records (their exact
offsets) and torn tails. ``repair`` opens the store with every segment scanned: damaged bytes
are copied to the quarantine directory and cut out, the records around them are kept.
"""

from __future__ import annotations

import os

from ...errors import StorageError
from ..base import RecoveryReport
from . import catalogue, files
from .durability import Durability
from .format import CATALOGUE_FILE, DEFAULT_SEGMENT_BYTES, LOCK_FILE, TOPICS_DIR, fs_name
from .partition_log import PartitionLog
from .recovery import Recovery
from .store import DiskStore

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]  # not on Windows: checked before each use


def check(path: str | os.PathLike[str]) -> RecoveryReport:
    """Scan every segment of the store at ``path`` without changing anything."""
    root = os.path.abspath(os.fspath(path))
    report = RecoveryReport()
    catalogue_path = os.path.join(root, CATALOGUE_FILE)
    if not os.path.exists(catalogue_path):
        raise StorageError(f"{root} is not a tidings data directory (no {CATALOGUE_FILE} file)")
    lock = _lock_shared(root)
    try:
        with open(catalogue_path, "rb") as f:
            loaded = catalogue.decode(f.read(), catalogue_path)
        recovery = Recovery(root, report, dry_run=True)
        durability = Durability()
        for spec in loaded.topics:
            report.topics += 1
            directory = os.path.join(root, TOPICS_DIR, fs_name(spec.name))
            p = 0
            while os.path.isdir(os.path.join(directory, str(p))):
                part = os.path.join(directory, str(p))
                if any(n.endswith(".log") for n in os.listdir(part)):
                    log = PartitionLog.open(
                        f"{spec.name}/{p}",
                        part,
                        durability,
                        DEFAULT_SEGMENT_BYTES,
                        False,
                        recovery,
                    )
                    first, end = log.bounds()
                    report.messages += end - first
                    log.close()
                p += 1
        durability.take().close()
    except OSError as exc:
        raise files.storage_error(exc, "checking", root) from exc
    finally:
        os.close(lock)
    return report


def repair(path: str | os.PathLike[str]) -> RecoveryReport:
    """Open the store at ``path`` with every segment scanned and damage cut out, then close it."""
    store = DiskStore(path, verify=True)
    report = store.open()
    store.close()
    return report


def _lock_shared(root: str) -> int:
    fd = os.open(os.path.join(root, LOCK_FILE), os.O_RDONLY | os.O_CREAT, 0o644)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageError(
                f"{root} is in use by a running broker: stop it first (a check reads every "
                "file and must not race the broker's writes)"
            ) from None
    return fd
