"""Client-side load balancers for instance-addressed calls.

A balancer chooses among instance keys (ids or URLs) and learns from each call's outcome:

- :class:`RoundRobin` takes them in turn.
- :class:`PeakEwma` is power-of-two-choices over a peak-sensitive EWMA of latency: a sample
  above the average replaces it at once (a slowdown shows on the next call), below it the
  average moves towards it with time constant ``decay`` seconds, and between calls it decays
  (so a once-slow instance is tried again later, not starved for ever); the cost is that
  latency times (outstanding calls + 1), ``initial`` seconds for an instance not yet measured.
  The failure penalty: a failure counts as a call that took at least ``penalty`` seconds,
  and takes the instance out of the choice: after ``bench`` seconds (doubling with each
  failure in a row, at most ``bench_max``) it gets one probe call; a success brings it back,
  another failure benches it longer, and its outlier ejection (5 failures in a row) takes it
  out for longer still. An instance that fails fast never looks like a fast, healthy one,
  and never pairs with a slow one to make the slow one win.

Both skip keys their :class:`~.ejection.OutlierEjection` has ejected and keys whose circuit
breaker refuses calls (``breakers=``: :class:`~.breakers.InstanceBreakers`, one resilience
circuit per instance, or anything shaped like :class:`Breakers`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from typing import Any, Protocol

from ..errors import NoInstance
from .ejection import OutlierEjection


class Breakers(Protocol):
    """Per-instance circuit breakers as seen by a balancer (the resilience pipeline's)."""

    def allows(self, key: str) -> bool: ...

    def admit(self, key: str) -> None: ...

    def record(self, key: str, seconds: float, ok: bool) -> None: ...


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
        if self.breakers is not None:
            self.breakers.admit(chosen)
        self.picks[chosen] = self.picks.get(chosen, 0) + 1
        self._started(chosen)
        return chosen

    def observe(self, key: str, seconds: float, ok: bool) -> None:
        """The call to ``key`` took ``seconds`` and succeeded (``ok``) or failed."""
        self.ejection.observe(key, ok)
        if self.breakers is not None:
            self.breakers.record(key, seconds, ok)
        self._ended(key, seconds, ok)

    def _choose(self, keys: list[str]) -> str:
        raise NotImplementedError

    def _started(self, key: str) -> None:
        pass

    def _ended(self, key: str, seconds: float, ok: bool) -> None:
        pass


class RoundRobin(Balancer):
    """Each eligible key in turn."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._next = 0

    def _choose(self, keys: list[str]) -> str:
        key = keys[self._next % len(keys)]
        self._next += 1
        return key


class _Load:
    __slots__ = ("benched_until", "cost", "outstanding", "probing", "stamp", "streak")

    def __init__(self, initial: float) -> None:
        self.cost = initial  # seconds, peak EWMA
        self.stamp = time.monotonic()
        self.outstanding = 0
        self.streak = 0  # failures in a row
        self.benched_until = 0.0
        self.probing = False


class PeakEwma(Balancer):
    """Power of two choices by peak-EWMA latency x outstanding calls (see the module)."""

    def __init__(
        self,
        *,
        decay: float = 10.0,
        penalty: float = 1.0,
        initial: float = 0.03,
        bench: float = 0.25,
        bench_max: float = 5.0,
        rng: random.Random | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.decay = decay
        self.penalty = penalty
        self.initial = initial
        self.bench = bench
        self.bench_max = bench_max
        self.rng = rng or random.Random()
        self._loads: dict[str, _Load] = {}

    def _load(self, key: str) -> _Load:
        load = self._loads.get(key)
        if load is None:
            load = self._loads[key] = _Load(self.initial)
        return load

    def _decayed(self, load: _Load, now: float) -> float:
        return load.cost * math.exp(-(now - load.stamp) / self.decay)

    def cost(self, key: str, now: float | None = None) -> float:
        load = self._load(key)
        now = time.monotonic() if now is None else now
        return self._decayed(load, now) * (load.outstanding + 1)

    def _choose(self, keys: list[str]) -> str:
        now = time.monotonic()
        healthy = []
        for key in keys:
            load = self._load(key)
            if load.streak == 0:
                healthy.append(key)
            elif not load.probing and load.benched_until <= now:
                load.probing = True  # its bench is over: one trial call
                return key
        keys = healthy or keys
        if len(keys) == 1:
            return keys[0]
        a, b = self.rng.sample(keys, 2)
        return a if self.cost(a) <= self.cost(b) else b

    def _started(self, key: str) -> None:
        self._load(key).outstanding += 1

    def _ended(self, key: str, seconds: float, ok: bool) -> None:
        load = self._load(key)
        load.outstanding = max(0, load.outstanding - 1)
        load.probing = False
        now = time.monotonic()
        if ok:
            load.streak = 0
            sample = seconds
        else:
            load.streak += 1
            sample = max(seconds, self.penalty)
            bench = min(self.bench * 2 ** (load.streak - 1), self.bench_max)
            load.benched_until = now + bench
        current = self._decayed(load, now)
        if sample > current:
            load.cost = sample
        else:
            weight = math.exp(-(now - load.stamp) / self.decay)
            load.cost = current * weight + sample * (1.0 - weight)
        load.stamp = now
