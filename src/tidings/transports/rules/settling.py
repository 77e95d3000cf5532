"""Settling rules written once: when a nack dead-letters instead of redelivering.

A nack (with or without delay) of a message that already had the group's ``max_deliveries``
deliveries dead-letters it with reason ``max-deliveries`` at once, as the built-in broker does;
a reject always dead-letters with reason ``rejected`` and the consumer's words as the error.
"""

from __future__ import annotations

from ...model import GroupSpec
from .admission import Verdict

REJECTED = "rejected"


def on_nack(spec: GroupSpec, count: int, delay: float = 0.0) -> Verdict:
    """What a nack of the ``count``-th delivery does: ``defer`` for ``delay`` seconds (0:
    redeliver now), or ``dead-letter`` when it was the last allowed delivery."""
    if spec.max_deliveries and count >= spec.max_deliveries:
        return Verdict("dead-letter", "max-deliveries", count)
    return Verdict("defer", delay=max(0.0, delay))


def on_reject(count: int) -> Verdict:
    """A reject dead-letters at once (the consumer's reason goes in the error text)."""
    return Verdict("dead-letter", REJECTED, count)
