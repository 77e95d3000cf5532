"""Exceptions a handler raises to choose what happens to its message.

Returning normally acknowledges the message; any other exception is a failure retried with
backoff until the group's max deliveries (then dead-lettered with the exception text).
"""

from __future__ import annotations


class Reject(Exception):
    """Dead-letter the message at once: it can never succeed (poison, business rule)."""

    def __init__(self, reason: str = "rejected by the handler") -> None:
        super().__init__(reason)
        self.reason = reason


class Retry(Exception):
    """Try the message again after ``delay`` seconds (the handler's backoff when None).
    It counts as a delivery, so max deliveries still ends a message that never succeeds."""

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason
