"""Broker-wide resource alarms, as RabbitMQ's: memory high watermark and disk free limit.

A task samples the process's resident memory and the free space of the data directory's disk
every ``CHECK_INTERVAL`` seconds. While an alarm is raised, publishes are refused with a
clear error (:class:`~tidings.errors.Overloaded` for memory, :class:`~tidings.errors.StorageFull`
for disk); consuming and acking go on, which is what clears the alarm. Raising and clearing are
logged once each.
"""

from __future__ import annotations

import logging
import os
import shutil

from ..errors import Overloaded, StorageFull, TidingsError

log = logging.getLogger("tidings.server")

CHECK_INTERVAL = 1.0


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def rss_bytes() -> int:
    """This process's resident memory (0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Alarms:
    def __init__(self, memory_high_watermark: float, disk_free_limit: int, path: str | None):
        if 0 < memory_high_watermark <= 1:
            self.memory_limit = int(memory_high_watermark * physical_memory())
        else:
            self.memory_limit = int(memory_high_watermark)
        self.disk_free_limit = disk_free_limit if path else 0
        self.path = path
        self.memory: TidingsError | None = None
        self.disk: TidingsError | None = None
        self.rss = 0
        self.free: int | None = None

    def describe(self) -> str:
        parts = []
        if self.memory_limit:
            parts.append(f"memory high watermark {self.memory_limit / 2**20:.0f} MiB")
        if self.disk_free_limit:
            parts.append(f"disk free limit {self.disk_free_limit / 2**20:.0f} MiB")
        return ", ".join(parts) or "no resource alarms"

    def check(self) -> None:
        """Sample memory and disk; raise or clear the alarms."""
        if self.memory_limit:
            self.rss = rss_bytes()
            if self.rss > self.memory_limit:
                if self.memory is None:
                    log.warning(
                        "memory alarm: %d MiB resident is above the high watermark of %d MiB; "
                        "publishes are refused until consumers catch up",
                        self.rss >> 20,
                        self.memory_limit >> 20,
                    )
                self.memory = Overloaded(
                    f"the broker's memory ({self.rss >> 20} MiB) is above its high watermark "
                    f"({self.memory_limit >> 20} MiB): publishing resumes when consumers catch "
                    "up; retry later or raise --memory-high-watermark"
                )
            elif self.memory is not None:
                log.warning("memory alarm cleared: %d MiB resident", self.rss >> 20)
                self.memory = None
        if self.disk_free_limit and self.path:
            try:
                self.free = shutil.disk_usage(self.path).free
            except OSError:
                return
            if self.free < self.disk_free_limit:
                if self.disk is None:
                    log.warning(
                        "disk alarm: %d MiB free on %s is below the limit of %d MiB; publishes "
                        "are refused until space is freed",
                        self.free >> 20,
                        self.path,
                        self.disk_free_limit >> 20,
                    )
                self.disk = StorageFull(
                    f"the broker's disk has {self.free >> 20} MiB free, below its "
                    f"--disk-free-limit of {self.disk_free_limit >> 20} MiB: free disk space "
                    "(or consume, so retention can delete) and retry"
                )
            elif self.disk is not None:
                log.warning("disk alarm cleared: %d MiB free", self.free >> 20)
                self.disk = None

    def refuse_publish(self) -> None:
        """Raise the alarm's error if publishes are refused right now."""
        if self.disk is not None:
            raise self.disk
        if self.memory is not None:
            raise self.memory
