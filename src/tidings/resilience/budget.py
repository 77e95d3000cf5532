"""Retry budget (Finagle's rule): retries may add at most ``ratio`` of the recent requests,
plus a floor of ``min_per_second``, so a failure storm cannot multiply the load on a callee.

Requests and retries are counted in a sliding window of ``ttl`` seconds (ten buckets). A retry
is allowed while ``retries < ratio * requests + min_per_second * ttl`` over that window; one
budget is shared by every call through a pipeline.
"""

from __future__ import annotations

from ..errors import BadRequest

_BUCKETS = 10


class RetryBudget:
    def __init__(
        self,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        ttl: float = 10.0,
    ) -> None:
        if not 0 <= ratio <= 1000:
            raise BadRequest("retry budget ratio must be >= 0 (0.2 = retries add 20 %)")
        if min_per_second < 0 or ttl <= 0:
            raise BadRequest("retry budget min_per_second must be >= 0 and ttl > 0 seconds")
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.ttl = ttl
        self._width = ttl / _BUCKETS
        self._requests = [0] * _BUCKETS
        self._retries = [0] * _BUCKETS
        self._epoch = [-1] * _BUCKETS

    def _slot(self, now: float) -> int:
        tick = int(now / self._width)
        i = tick % _BUCKETS
        if self._epoch[i] != tick:
            self._epoch[i] = tick
            self._requests[i] = 0
            self._retries[i] = 0
        return i

    def _totals(self, now: float) -> tuple[int, int]:
        tick = int(now / self._width)
        requests = retries = 0
        for i in range(_BUCKETS):
            if tick - self._epoch[i] < _BUCKETS:
                requests += self._requests[i]
                retries += self._retries[i]
        return requests, retries

    def request(self, now: float) -> None:
        """Count one logical request (its first attempt) at time ``now``."""
        self._requests[self._slot(now)] += 1

    def try_retry(self, now: float) -> bool:
        """Take one retry from the budget; False when it is used up."""
        requests, retries = self._totals(now)
        if retries + 1 > self.ratio * requests + self.min_per_second * self.ttl:
            return False
        self._retries[self._slot(now)] += 1
        return True

    def available(self, now: float) -> float:
        """Retries the budget would allow now."""
        requests, retries = self._totals(now)
        return self.ratio * requests + self.min_per_second * self.ttl - retries
