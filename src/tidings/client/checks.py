"""Argument checks made before anything is sent: bodies, ttl/delay, and the capabilities a
group needs. What a transport cannot do is refused here, when it is declared, not when it
first fails."""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import BadRequest
from ..model import Outgoing
from ..transports import base as caps
from ..transports.base import Transport

Body = bytes | bytearray | memoryview | str


def as_bytes(body: Body) -> bytes:
    """A message body as bytes (str is encoded as UTF-8)."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    raise BadRequest(f"a message body must be bytes or str, got {type(body).__name__}")


def check_timing(
    transport: Transport, ttl: float | None, delay: float | None
) -> tuple[float | None, float | None]:
    """``ttl`` and ``delay`` checked against their ranges and the transport's capabilities
    (a delay of 0 is no delay)."""
    if ttl is not None:
        if not ttl > 0:
            raise BadRequest(f"ttl must be > 0 seconds, got {ttl!r}")
        transport.require(caps.CAP_TTL, "a message ttl")
    if delay is not None:
        if delay < 0:
            raise BadRequest(f"delay must be >= 0 seconds, got {delay!r}")
        if delay == 0:
            delay = None
        else:
            transport.require(caps.CAP_DELAY, "a message delay")
    return ttl, delay


def prepare(transport: Transport, message: Outgoing) -> Outgoing:
    """``message`` checked (its body as bytes, its ttl and delay in range): the message itself
    when nothing needed changing, else a copy (the caller's message is never changed)."""
    if not isinstance(message, Outgoing):
        raise BadRequest(f"publish_many takes tidings.Outgoing items, got {message!r}")
    changes: dict[str, Any] = {}
    if not isinstance(message.body, bytes):
        changes["body"] = as_bytes(message.body)
    if message.ttl is not None or message.delay is not None:
        _, delay = check_timing(transport, message.ttl, message.delay)
        if delay != message.delay:
            changes["delay"] = delay
    return msgspec.structs.replace(message, **changes) if changes else message
