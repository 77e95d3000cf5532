"""Exponential backoff with jitter for failed deliveries."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import BadRequest


@dataclass(frozen=True)
class Backoff:
    """Delay before delivery ``n + 1`` after delivery ``n`` failed:
    ``min(max_delay, initial * factor ** (n - 1))``, shortened by a random fraction of up to
    ``jitter`` (0 = none, 1 = full jitter) so failing consumers do not retry in lock-step."""

    initial: float = 1.0
    factor: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial < 0 or self.max_delay < 0:
            raise BadRequest("backoff delays must be >= 0 seconds")
        if self.factor < 1:
            raise BadRequest("backoff factor must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise BadRequest("backoff jitter must be from 0 to 1")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first)."""
        exponent = max(attempt, 1) - 1
        try:
            base = min(self.max_delay, self.initial * self.factor**exponent)
        except OverflowError:
            base = self.max_delay
        return base * (1.0 - self.jitter * rand())
