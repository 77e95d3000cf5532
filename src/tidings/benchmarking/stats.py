"""Medians and percentiles (nearest rank), and the latency summary of one run."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / p99.9 / max in milliseconds."""
    ordered = sorted(seconds)
    return {
        "p50": percentile(ordered, 50) * 1e3,
        "p99": percentile(ordered, 99) * 1e3,
        "p99.9": percentile(ordered, 99.9) * 1e3,
        "max": (ordered[-1] if ordered else math.nan) * 1e3,
    }
