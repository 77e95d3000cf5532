"""What one open, check or repair of a disk store found and did: the report it fills in, and
the quarantine directory where the bytes recovery cuts out of a file are kept.

Three modes: a normal open scans the tail segments (and any whose index does not match),
repairs the damage it finds and quarantines what it cut; ``verify`` scans every segment, not
only the tails (``tidings store repair``); ``dry_run`` scans every segment and changes nothing
(``tidings store check``).
"""

from __future__ import annotations

import os
import time

from ..base import LostRange, RecoveryReport
from . import files
from .format import QUARANTINE_DIR, QUARANTINE_SUFFIX


class Recovery:
    __slots__ = ("dry_run", "report", "root", "verify")

    def __init__(
        self, root: str, report: RecoveryReport, verify: bool = False, dry_run: bool = False
    ) -> None:
        self.root = root
        self.report = report
        self.verify = verify or dry_run
        self.dry_run = dry_run

    def truncated(self, line: str) -> None:
        self.report.truncated.append(line)

    def lost(
        self,
        name: str,
        first: int,
        count: int,
        path: str,
        position: int,
        reason: str,
        kept: str = "",
    ) -> None:
        """Offsets ``first``..``first+count-1`` of the partition ``name`` ("topic/partition")."""
        topic, _, partition = name.rpartition("/")
        self.report.lost.append(
            LostRange(
                topic=topic,
                partition=int(partition),
                first=first,
                last=first + count - 1,
                file=path,
                position=position,
                reason=reason,
                quarantine=kept,
            )
        )

    def quarantine(self, path: str, position: int, data: bytes | memoryview) -> str:
        """Keep ``data`` (cut from byte ``position`` of ``path``) in the quarantine directory,
        durably, before the cut: returns the copy's path ("" in a dry run)."""
        if self.dry_run or not len(data):
            return ""
        relative = os.path.relpath(path, self.root)
        target = os.path.join(
            self.root,
            QUARANTINE_DIR,
            f"{relative}.{position}.{time.time_ns()}{QUARANTINE_SUFFIX}",
        )
        dirty: set[str] = set()
        files.make_dirs(os.path.dirname(target), dirty, stop=self.root)
        files.atomic_write(target, bytes(data))
        for directory in dirty:
            files.fsync_path(directory)
        self.report.quarantined.append(target)
        return target
