"""Broker-wide resource alarms, as RabbitMQ's: memory high watermark and disk free limit.

A task samples the process's resident memory and the free space of the data directory's disk
every ``CHECK_INTERVAL`` seconds. The disk limit is also kept on the write path: every admitted
publish counts its bytes against the free space seen at the last check, and a publish that
would take the free space below the limit (by that estimate, then by a fresh ``statvfs``) is
refused before anything is appended; ``statvfs`` runs again after ``disk_check_every`` bytes,
so a burst faster than the sampling task cannot fill the disk past the limit. While an alarm is
raised, publishes are refused with a clear error (:class:`~tidings.errors.Overloaded` for
memory, :class:`~tidings.errors.StorageFull` for disk); consuming and acking go on, which is
what clears the alarm. Raising and clearing are logged once each.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil

from ..errors import Overloaded, StorageFull, TidingsError

log = logging.getLogger("tidings.server")

CHECK_INTERVAL = 1.0
DEFAULT_DISK_FREE_LIMIT = 50 * 1024 * 1024
DEFAULT_DISK_FREE_SHARE = 0.05  # the default limit is at most this share of the disk's size
MIN_DISK_CHECK_BYTES = 256 * 1024  # statvfs again after this many bytes written, at least ...
MAX_DISK_CHECK_BYTES = 8 * 1024 * 1024  # ... and at most (an eighth of the limit in between)


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
    def __init__(
        self, memory_high_watermark: float, disk_free_limit: int | None, path: str | None
    ) -> None:
        if 0 < memory_high_watermark <= 1:
            self.memory_limit = int(memory_high_watermark * physical_memory())
        else:
            self.memory_limit = int(memory_high_watermark)
        if disk_free_limit is None and path:  # the default: never more than 5% of the disk
            disk_free_limit = DEFAULT_DISK_FREE_LIMIT
            existing = path
            while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
                existing = os.path.dirname(existing)  # the data directory may not exist yet
            with contextlib.suppress(OSError):
                total = shutil.disk_usage(existing).total
                disk_free_limit = min(disk_free_limit, int(total * DEFAULT_DISK_FREE_SHARE))
        self.disk_free_limit = (disk_free_limit or 0) if path else 0
        self.path = path
        self.memory: TidingsError | None = None
        self.disk: TidingsError | None = None
        self.rss = 0
        self.buffered = 0
        self.free: int | None = None
        self.unchecked = 0  # bytes admitted for writing since ``free`` was measured
        self.inflight = 0  # bytes admitted for writing and not yet appended
        limit = self.disk_free_limit
        self.disk_check_every = min(max(limit // 8, MIN_DISK_CHECK_BYTES), MAX_DISK_CHECK_BYTES)

    def describe(self) -> str:
        parts = []
        if self.memory_limit:
            parts.append(f"memory high watermark {self.memory_limit / 2**20:.0f} MiB")
        if self.disk_free_limit:
            parts.append(f"disk free limit {self.disk_free_limit / 2**20:.0f} MiB")
        return ", ".join(parts) or "no resource alarms"

    def check(self, buffered: int = 0) -> None:
        """Sample memory and disk; raise or clear the alarms. ``buffered``: bytes waiting in
        client write buffers, which count against the memory watermark on their own too (they
        are there at once, before the next RSS sample sees them)."""
        if self.memory_limit:
            self.rss = rss_bytes()
            self.buffered = buffered
            if self.rss > self.memory_limit or buffered > self.memory_limit:
                if self.memory is None:
                    log.warning(
                        "memory alarm: %d MiB resident (%d MiB buffered for clients) is above "
                        "the high watermark of %d MiB; publishes are refused until consumers "
                        "catch up, and clients over their write high-water mark are closed",
                        self.rss >> 20,
                        buffered >> 20,
                        self.memory_limit >> 20,
                    )
                self.memory = Overloaded(
                    f"the broker's memory ({self.rss >> 20} MiB, {buffered >> 20} MiB of it "
                    f"buffered for clients) is above its high watermark "
                    f"({self.memory_limit >> 20} MiB): publishing resumes when consumers catch "
                    "up; retry later or raise --memory-high-watermark"
                )
            elif self.memory is not None:
                log.warning("memory alarm cleared: %d MiB resident", self.rss >> 20)
                self.memory = None
        if self.disk_free_limit and self.path:
            self._check_disk(self.inflight)

    def _check_disk(self, pending: int) -> None:
        """Measure the free space and raise the disk alarm if ``pending`` bytes more (admitted
        but not yet on disk) would take it below the limit. Clearing needs
        ``disk_check_every`` bytes above the limit, so a disk hovering at the limit does not
        flip the alarm at every sample."""
        if not self.path:  # no data directory: disk_free_limit is 0 and this is not called
            return
        try:
            self.free = shutil.disk_usage(self.path).free
        except OSError:
            return
        self.unchecked = self.inflight
        if self.free - pending < self.disk_free_limit:
            if self.disk is None:
                log.warning(
                    "disk alarm: %d MiB free on %s, and %d KiB about to be written, is below "
                    "the limit of %d MiB; publishes are refused until space is freed",
                    self.free >> 20,
                    self.path,
                    pending >> 10,
                    self.disk_free_limit >> 20,
                )
            self.disk = StorageFull(
                f"the broker's disk has {self.free >> 20} MiB free, {pending >> 10} KiB more "
                f"would be below its --disk-free-limit of {self.disk_free_limit >> 20} MiB: "
                "free disk space (or consume, so retention can delete) and retry"
            )
        elif self.disk is not None and self.free >= self.disk_free_limit + self.disk_check_every:
            log.warning("disk alarm cleared: %d MiB free", self.free >> 20)
            self.disk = None

    def admit_write(self, size: int) -> None:
        """On the write path, before ``size`` bytes are appended: keep the disk limit without
        waiting for the sampling task. Cheap: ``statvfs`` runs only when the bytes admitted
        since the last measurement reach ``disk_check_every`` or would reach the limit.
        Raises the disk alarm (which :meth:`refuse_publish` then raises) when they would."""
        if not self.disk_free_limit or self.free is None:
            return
        projected = self.unchecked + size
        if projected >= self.disk_check_every or self.free - projected < self.disk_free_limit:
            self._check_disk(self.inflight + size)
            if self.disk is not None:
                return
        self.unchecked += size
        self.inflight += size

    def written(self, size: int) -> None:
        """``size`` admitted bytes were appended (or failed): they are no longer pending."""
        self.inflight = max(0, self.inflight - size)

    def explain_at_start(self) -> None:
        """Say at start, loudly, when an alarm already refuses every publish (and why)."""
        if self.disk is not None:
            log.error(
                "the data disk %s has %d MiB free, below --disk-free-limit %d MiB: every "
                "publish will be refused with StorageFull until space is freed; free space, "
                "or lower the limit (--disk-free-limit BYTES, 0 turns it off)",
                self.path,
                (self.free or 0) >> 20,
                self.disk_free_limit >> 20,
            )
        if self.memory is not None:
            log.error(
                "the broker already uses %d MiB, above --memory-high-watermark %d MiB: every "
                "publish will be refused with Overloaded; raise the watermark",
                self.rss >> 20,
                self.memory_limit >> 20,
            )

    def refuse_publish(self, size: int = 0) -> None:
        """Raise the alarm's error if publishes are refused right now, or if appending ``size``
        more bytes would take the disk below its free limit."""
        if self.disk is None and size:
            self.admit_write(size)
        if self.disk is not None:
            raise self.disk
        if self.memory is not None:
            raise self.memory
