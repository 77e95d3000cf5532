"""When a message expires (TTL) and when it may be delivered (delay).

Transports carry a message's TTL and delay as seconds in headers, counted from the time the
*engine* stamped on the message when it stored it, so that publishers' clocks never matter.
These functions turn them into wall-clock instants and read them back from header text.
"""

from __future__ import annotations

from ...errors import BadRequest


def seconds(value: str | None) -> float | None:
    """A seconds header as a float (None when absent or not a number)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def ttl_text(ttl: float | None) -> str | None:
    """The header text of a TTL (None: no TTL); BadRequest for a TTL that is not positive."""
    if ttl is None:
        return None
    if ttl <= 0:
        raise BadRequest("ttl must be > 0 seconds")
    return repr(float(ttl))


def delay_text(delay: float | None) -> str | None:
    """The header text of a delay (None: deliverable at once)."""
    if delay is None or delay <= 0:
        return None
    return repr(float(delay))


def expires_at(stored_at: float, ttl: float | None) -> float | None:
    """Wall-clock time after which a message stored at ``stored_at`` is never delivered."""
    return None if ttl is None else stored_at + ttl


def deliver_at(stored_at: float, delay: float | None) -> float | None:
    """Wall-clock time before which a message stored at ``stored_at`` is not delivered."""
    return None if delay is None else stored_at + delay


def expired(expires: float | None, now: float) -> bool:
    return expires is not None and now >= expires


def remaining_delay(deliver: float | None, now: float) -> float:
    """Seconds until the message may be delivered (0.0: now)."""
    return 0.0 if deliver is None else max(0.0, deliver - now)
