"""Outlier ejection: an instance that fails ``consecutive`` calls in a row is left out for
``base`` seconds, longer each time it is ejected again (``base`` x times ejected, at most
``max_time``), and never more than ``max_share`` of the instances at once (the rest keep
serving even when all look bad: ejecting everything would be an outage of our own making).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence


class OutlierEjection:
    def __init__(
        self,
        *,
        consecutive: int = 5,
        base: float = 30.0,
        max_time: float = 300.0,
        max_share: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consecutive = consecutive
        self.base = base
        self.max_time = max_time
        self.max_share = max_share
        self.clock = clock
        self._failures: dict[str, int] = {}
        self._times: dict[str, int] = {}  # how often each key was ejected
        self._until: dict[str, float] = {}
        self.known: set[str] = set()  # every key offered so far (the share's denominator)

    def ejected(self, key: str) -> bool:
        return self._until.get(key, 0.0) > self.clock()

    def eligible(self, keys: Sequence[str]) -> list[str]:
        self.known.update(keys)
        out = [k for k in keys if not self.ejected(k)]
        return out or list(keys)

    def observe(self, key: str, ok: bool) -> None:
        if ok:
            self._failures[key] = 0
            return
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        if failures < self.consecutive or self.ejected(key):
            return
        known = self.known | {key}
        now = self.clock()
        out_now = sum(1 for k in known if self._until.get(k, 0.0) > now)
        if out_now + 1 > max(1, math.floor(len(known) * self.max_share)):
            return  # at the bound: keep it in
        times = self._times[key] = self._times.get(key, 0) + 1
        self._until[key] = now + min(self.base * times, self.max_time)
        self._failures[key] = 0
