"""Reconnect delays: exponential backoff with jitter, so many clients do not return at once."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial * 2**n`` capped at ``maximum``, each drawn from [delay/2, delay]."""

    def __init__(self, initial: float = 0.05, maximum: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempts = 0

    def next(self) -> float:
        delay = min(self.maximum, self.initial * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempts = 0
