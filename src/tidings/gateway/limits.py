"""Per-client rate limits (API key, else the client's IP): a token bucket each, reported in
the IETF ``RateLimit-*`` headers and refused with 429 and ``Retry-After``."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from ..resilience.ratelimit import Bucket

MAX_CLIENTS = 10_000  # buckets kept; the least recently seen client is forgotten first


@dataclass
class Verdict:
    allowed: bool
    headers: dict[str, str]
    retry_after: float = 0.0


class ClientLimits:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def check(self, client: str, now: float | None = None) -> Verdict:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = Bucket(self.rate, self.burst, now)
            if len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
        taken = bucket.take(now, 0.0)
        remaining = max(0, math.floor(bucket.tokens))
        refill = (self.burst - bucket.tokens) / self.rate
        headers = {
            "RateLimit-Limit": str(int(self.burst)),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(max(0, math.ceil(refill))),
            "RateLimit-Policy": f"{int(self.burst)};w={max(1, math.ceil(self.burst / self.rate))}",
        }
        if taken is None:
            wait = (1 - bucket.tokens) / self.rate
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return Verdict(False, headers, wait)
        return Verdict(True, headers)
