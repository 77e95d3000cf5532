"""Client-side load balancers for instance-addressed calls.

A balancer chooses among instance keys (ids or URLs) and learns from each call's outcome:

- :class:`RoundRobin` takes them in turn.
- :class:`PeakEwma` is power-of-two-choices over a peak-sensitive EWMA of latency: a sample
  above the average replaces it at once (a slowdown shows on the next call), below it the
  average decays towards it with time constant ``decay`` seconds; the cost is that latency
  times (outstanding calls + 1). A failure counts as a call that took at least ``penalty``
  seconds, so an instance that fails fast does not look like a fast, healthy one.

Both skip keys their :class:`~.ejection.OutlierEjection` has ejected and keys whose circuit
breaker (any object with ``allows(key) -> bool``, see :class:`Breakers`) refuses calls.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from typing import Protocol

from ..errors import NoInstance
from .ejection import OutlierEjection


class Breakers(Protocol):
    """Per-instance circuit breakers as seen by a balancer (the resilience pipeline's)."""

    def allows(self, key: str) -> bool: ...

    def record(self, key: str, ok: bool) -> None: ...


class Balancer:
    """The shared part: eligibility, outcome bookkeeping; subclasses choose."""

    def __init__(
        self, *, ejection: OutlierEjection | None = None, breakers: Breakers | None = None
    ) -> None:
        self.ejection = ejection if ejection is not None else OutlierEjection()
        self.breakers = breakers
        self.picks: dict[str, int] = {}

    def eligible(self, keys: Sequence[str]) -> list[str]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            raise NoInstance("no instance to choose from: none is registered and live")
        allowed = self.ejection.eligible(keys)
        if self.breakers is not None:
            allowed = [k for k in allowed if self.breakers.allows(k)] or allowed
        return allowed

    def pick(self, keys: Sequence[str]) -> str:
        """Choose one of ``keys`` for the next call; call :meth:`observe` when it ends."""
        chosen = self._choose(self.eligible(keys))
        self.picks[chosen] = self.picks.get(chosen, 0) + 1
        self._started(chosen)
        return chosen

    def observe(self, key: str, seconds: float, ok: bool) -> None:
        """The call to ``key`` took ``seconds`` and succeeded (``ok``) or failed."""
        self.ejection.observe(key, ok)
        if self.breakers is not None:
            self.breakers.record(key, ok)
        self._ended(key, seconds, ok)

    def _choose(self, keys: list[str]) -> str:
        raise NotImplementedError

    def _started(self, key: str) -> None:
        pass

    def _ended(self, key: str, seconds: float, ok: bool) -> None:
        pass


class RoundRobin(Balancer):
    """Each eligible key in turn."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._next = 0

    def _choose(self, keys: list[str]) -> str:
        key = keys[self._next % len(keys)]
        self._next += 1
        return key


class _Load:
    __slots__ = ("cost", "outstanding", "stamp")

    def __init__(self) -> None:
        self.cost = 0.0  # seconds, peak EWMA
        self.stamp = time.monotonic()
        self.outstanding = 0


class PeakEwma(Balancer):
    """Power of two choices by peak-EWMA latency x outstanding calls (see the module)."""

    def __init__(
        self,
        *,
        decay: float = 10.0,
        penalty: float = 1.0,
        rng: random.Random | None = None,
        **options: object,
    ) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.decay = decay
        self.penalty = penalty
        self.rng = rng or random.Random()
        self._loads: dict[str, _Load] = {}

    def _load(self, key: str) -> _Load:
        load = self._loads.get(key)
        if load is None:
            load = self._loads[key] = _Load()
        return load

    def cost(self, key: str) -> float:
        load = self._load(key)
        return load.cost * (load.outstanding + 1)

    def _choose(self, keys: list[str]) -> str:
        if len(keys) == 1:
            return keys[0]
        a, b = self.rng.sample(keys, 2)
        return a if self.cost(a) <= self.cost(b) else b

    def _started(self, key: str) -> None:
        self._load(key).outstanding += 1

    def _ended(self, key: str, seconds: float, ok: bool) -> None:
        load = self._load(key)
        load.outstanding = max(0, load.outstanding - 1)
        sample = seconds if ok else max(seconds, self.penalty)
        now = time.monotonic()
        if sample > load.cost:
            load.cost = sample
        else:
            weight = math.exp(-(now - load.stamp) / self.decay)
            load.cost = load.cost * weight + sample * (1.0 - weight)
        load.stamp = now
