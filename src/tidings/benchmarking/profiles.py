"""How big each workload is: ``full`` (the issue's numbers), ``moderate`` (medians of 3 in
minutes, what docs/performance.md quotes), ``quick`` (all engines in under 3 minutes) and
``smoke`` (tiny, for CI: it only proves the harness works)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    publish_n: int  # messages per publish mode (single, batched), 256 bytes
    batch: int  # messages per batched publish
    mpmc_n: int  # messages through 4 producers + 4 consumers
    fanout_n: int  # messages published once, received by each of 4 groups
    latency_rates: tuple[int, ...]  # msg/s
    latency_seconds: float
    backlog_n: int  # 1 KB messages
    ordered_n: int
    repeat: int
    timeout: float  # seconds one workload may take on one engine


FULL = Profile(
    name="full",
    publish_n=200_000,
    batch=500,
    mpmc_n=200_000,
    fanout_n=50_000,
    latency_rates=(2_000, 10_000),
    latency_seconds=10.0,
    backlog_n=2_000_000,
    ordered_n=100_000,
    repeat=3,
    timeout=900.0,
)
MODERATE = Profile(
    name="moderate",
    publish_n=40_000,
    batch=500,
    mpmc_n=20_000,
    fanout_n=5_000,
    latency_rates=(2_000, 10_000),
    latency_seconds=3.0,
    backlog_n=50_000,
    ordered_n=10_000,
    repeat=3,
    timeout=180.0,
)
QUICK = Profile(
    name="quick",
    publish_n=10_000,
    batch=500,
    mpmc_n=10_000,
    fanout_n=5_000,
    latency_rates=(2_000, 10_000),
    latency_seconds=1.5,
    backlog_n=20_000,
    ordered_n=10_000,
    repeat=1,
    timeout=60.0,
)
SMOKE = Profile(
    name="smoke",
    publish_n=400,
    batch=100,
    mpmc_n=400,
    fanout_n=200,
    latency_rates=(200, 500),
    latency_seconds=0.4,
    backlog_n=500,
    ordered_n=400,
    repeat=1,
    timeout=30.0,
)
PROFILES = {p.name: p for p in (FULL, MODERATE, QUICK, SMOKE)}
