"""Argument checks made before anything is sent: bodies, ttl/delay, and the capabilities a
group needs. What a transport cannot do is refused here, when it is declared, not when it
first fails."""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import BadRequest
from ..ids import default_snowflake
from ..model import GroupSpec, Outgoing
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


def prepare(transport: Transport, message: Outgoing, stable_id: bool) -> Outgoing:
    """Check ``message`` and, with ``stable_id``, give it a producer id (a Snowflake) so a
    retried publish is deduplicated by the broker."""
    if not isinstance(message, Outgoing):
        raise BadRequest(f"publish_many takes tidings.Outgoing items, got {message!r}")
    changes: dict[str, Any] = {}
    if not isinstance(message.body, bytes):
        changes["body"] = as_bytes(message.body)
    if message.ttl is not None:
        if not message.ttl > 0:
            raise BadRequest(f"ttl must be > 0 seconds, got {message.ttl!r}")
        transport.require(caps.CAP_TTL, "a message ttl")
    if message.delay is not None:
        if message.delay < 0:
            raise BadRequest(f"delay must be >= 0 seconds, got {message.delay!r}")
        if message.delay == 0:
            changes["delay"] = None
        else:
            transport.require(caps.CAP_DELAY, "a message delay")
    if message.msg_id is None and stable_id:
        changes["msg_id"] = default_snowflake().next_str()
    return msgspec.structs.replace(message, **changes) if changes else message


def require_group_capabilities(transport: Transport, spec: GroupSpec) -> None:
    need = transport.require
    if spec.mode == "ordered":
        need(caps.CAP_ORDERED, "mode='ordered'")
    if spec.key_ordered:
        need(caps.CAP_KEY_ORDERED, "key_ordered=True")
    if spec.auto_ack:
        need(caps.CAP_AUTO_ACK, "auto_ack=True")
    if spec.start == "offset":
        need(caps.CAP_START_OFFSET, "start at an offset")
    if spec.start == "time":
        need(caps.CAP_START_TIME, "start at a time")
    if spec.dead_letter_expired:
        need(caps.CAP_DEAD_LETTER_EXPIRED, "dead_letter_expired=True")
