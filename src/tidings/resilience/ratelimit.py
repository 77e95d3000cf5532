"""Rate limiter: a token bucket of ``burst`` tokens refilled at ``rate`` per second.

A call takes a token; without one it waits for the next token if that comes within
``max_wait`` seconds, else it is rejected with :class:`~tidings.RateLimited` carrying
``retry_after`` (so an outer retry waits the right time). ``per_callee=True`` keeps one bucket
per callee key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest, RateLimited
from . import events as ev
from .context import Call, Run


class Bucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float, max_wait: float) -> float | None:
        """Take a token: 0.0 if one was there, the wait for a reserved one, None if refused."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        wait = (1 - self.tokens) / self.rate
        if wait <= max_wait:
            self.tokens -= 1
            return wait
        return None


@dataclass
class RateLimiter:
    rate: float
    burst: float | None = None
    max_wait: float = 0.0
    per_callee: bool = False
    buckets: dict[str | None, Bucket] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise BadRequest("rate limiter rate must be > 0 calls per second")
        if self.burst is None:
            self.burst = max(1.0, self.rate)
        if self.burst < 1:
            raise BadRequest("rate limiter burst must be >= 1 call")

    async def execute(self, call: Call, run: Run) -> Any:
        key = run.callee if self.per_callee else None
        now = run.timer.now()
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(self.rate, float(self.burst or 1), now)
        wait = bucket.take(now, self.max_wait)
        if wait is None:
            retry_after = (1 - bucket.tokens) / self.rate
            run.emit(ev.RATE_LIMITED, delay=retry_after)
            who = f" to {run.callee!r}" if run.callee else ""
            raise RateLimited(
                f"rate limit of policy {run.policy!r}{who} ({self.rate:g}/s, burst "
                f"{self.burst:g}) is used up; retry in {retry_after:.3f}s",
                retry_after=retry_after,
            )
        if wait:
            await run.timer.sleep(wait)
        return await call()
