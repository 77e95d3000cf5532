"""The one backoff of tidings: exponential delays with jitter.

Used by the retry strategy, by the service's redelivery delays, by the client's publish
retries and by the tidings:// transport's reconnect loop. ``jitter`` picks how a delay is
spread so that many failing callers do not come back in lock-step:

- a number ``f`` from 0 to 1: the exponential delay shortened by a random fraction of up to
  ``f`` (0 = none; 0.5 = uniform in [delay/2, delay]);
- ``"full"``: uniform in [0, delay] (the AWS "full jitter": the least contention);
- ``"decorrelated"``: uniform in [initial, 3 x the previous delay], capped (AWS
  "decorrelated jitter": grows like the exponential but never synchronises).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..errors import BadRequest

Jitter = float | Literal["full", "decorrelated"]


@dataclass(frozen=True)
class Backoff:
    """Delay before try ``n + 1`` after try ``n`` failed:
    ``min(max_delay, initial * factor ** (n - 1))``, spread by ``jitter`` (see the module)."""

    initial: float = 1.0
    factor: float = 2.0
    max_delay: float = 300.0
    jitter: Jitter = 0.2

    def __post_init__(self) -> None:
        if self.initial < 0 or self.max_delay < 0:
            raise BadRequest("backoff delays must be >= 0 seconds")
        if self.factor < 1:
            raise BadRequest("backoff factor must be >= 1")
        if isinstance(self.jitter, str):
            if self.jitter not in ("full", "decorrelated"):
                raise BadRequest(
                    f"backoff jitter {self.jitter!r}: use a fraction from 0 to 1, "
                    "'full' or 'decorrelated'"
                )
        elif not 0 <= self.jitter <= 1:
            raise BadRequest("backoff jitter must be from 0 to 1, 'full' or 'decorrelated'")

    def base(self, attempt: int) -> float:
        """The un-jittered delay after failed try ``attempt`` (1 for the first)."""
        exponent = max(attempt, 1) - 1
        try:
            return min(self.max_delay, self.initial * self.factor**exponent)
        except OverflowError:
            return self.max_delay

    def delay(
        self,
        attempt: int,
        rand: Callable[[], float] = random.random,
        previous: float | None = None,
    ) -> float:
        """Seconds to wait after failed try ``attempt`` (1 for the first); ``previous`` is the
        last delay returned (only decorrelated jitter uses it)."""
        if self.jitter == "full":
            return self.base(attempt) * rand()
        if self.jitter == "decorrelated":
            last = self.initial if previous is None else max(previous, self.initial)
            high = min(self.max_delay, last * 3)
            return min(self.max_delay, self.initial + (high - self.initial) * rand())
        return self.base(attempt) * (1.0 - self.jitter * rand())

    def sequence(self, rand: Callable[[], float] = random.random) -> Delays:
        """A stateful series of delays (``next()``, ``reset()``) for loops like reconnecting."""
        return Delays(self, rand)


class Delays:
    """Successive delays of one :class:`Backoff`; ``reset()`` after a success."""

    def __init__(self, backoff: Backoff, rand: Callable[[], float] = random.random) -> None:
        self.backoff = backoff
        self.rand = rand
        self.attempts = 0
        self.previous: float | None = None

    def next(self) -> float:
        self.attempts += 1
        self.previous = self.backoff.delay(self.attempts, self.rand, self.previous)
        return self.previous

    def reset(self) -> None:
        self.attempts = 0
        self.previous = None
