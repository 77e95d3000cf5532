"""A fixed-bucket latency histogram, cheap enough for once-per-commit or once-per-publish-run
observation (one bisect and two additions), read at scrape time by the metrics endpoint.

Buckets are upper bounds in seconds (cumulative counts are computed when read, not when
observed); the last bucket is +Inf.
"""

from __future__ import annotations

from bisect import bisect_left

# 50 µs .. 10 s: publish confirms and fsyncs on a laptop SSD land in the low milliseconds
LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class LatencyHistogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float, n: int = 1) -> None:
        """Record ``n`` events that each took ``seconds``."""
        self.counts[bisect_left(self.bounds, seconds)] += n
        self.count += n
        self.sum += seconds * n

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, events at or below it) per bucket, ending with (inf, count)."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out
