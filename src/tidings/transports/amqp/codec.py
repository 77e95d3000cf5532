"""Messages on the wire: tidings messages as AMQP 0-9-1 messages and back.

The body is the AMQP body; the application's headers travel as AMQP headers (strings), next
to the ``tidings-*`` headers of :mod:`.naming`. Every message is persistent (delivery mode 2).
RabbitMQ has no offsets: a message's offset is a Snowflake id made by the publishing
transport (time-ordered, unique across publishers, increasing for one publisher), so offsets
order one producer's messages but are not contiguous positions.

The TTL is carried in seconds from the publish time and checked when a message is received
(:mod:`..rules.timing`, as on every transport without native TTL; stock RabbitMQ stamps no
time on stored messages, so the publisher's clock counts). RabbitMQ's own per-message
expiration is not used: it drops a message silently (or into one dead-letter exchange per
queue, for every reason alike), while a group with ``dead_letter_expired`` must receive the
expired message in its dead-letter topic with reason ``expired``.
"""

from __future__ import annotations

import time
from typing import Any

import aio_pika

from ... import headers as H
from ...errors import BadRequest
from ...ids import Snowflake
from ...model import Delivery, Outgoing
from ..rules.timing import expires_at, seconds, ttl_text
from .naming import (
    DELIVERY_COUNT,
    H_ID,
    H_KEY,
    H_MSG_ID,
    H_OFFSET,
    H_PARTITION,
    H_TIME,
    H_TTL,
    INTERNAL_HEADERS,
    RABBITMQ_HEADERS,
    X_DEATH,
)

_ids = Snowflake()


def new_offset() -> int:
    return _ids.next_id()


def encode(
    message: Outgoing, partition: int, offset: int, mid: str, now: float
) -> aio_pika.Message:
    headers: dict[str, Any] = {}
    for name, value in message.headers.items():
        if name in INTERNAL_HEADERS or name.startswith(RABBITMQ_HEADERS):
            raise BadRequest(
                f"header name {name!r} is reserved on amqp:// (a tidings-* internal, or set by "
                "RabbitMQ itself): choose another name"
            )
        headers[name] = value
    headers[H_ID] = mid
    headers[H_PARTITION] = partition
    headers[H_OFFSET] = offset
    headers[H_TIME] = repr(now)
    if message.key is not None:
        headers[H_KEY] = message.key
    if message.msg_id is not None:
        headers[H_MSG_ID] = message.msg_id
    if message.ttl is not None:
        headers[H_TTL] = ttl_text(message.ttl)
    return aio_pika.Message(
        message.body,
        headers=headers,
        message_id=mid,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(_text(value))
    except ValueError:
        return None


def _int(value: Any, default: int = 0) -> int:
    if type(value) is int:
        return value
    if value is None:
        return default
    try:
        return int(_text(value))
    except (TypeError, ValueError):
        return default


class Incoming:
    """A delivered AMQP message, decoded once."""

    __slots__ = (
        "arrived",
        "body",
        "count",
        "death",
        "expires_at",
        "headers",
        "id",
        "key",
        "msg_id",
        "offset",
        "partition",
        "raw",
        "redrive_group",
        "timestamp",
    )

    def __init__(self, raw: aio_pika.abc.AbstractIncomingMessage, arrived: float) -> None:
        self.raw = raw
        self.arrived = arrived  # time.monotonic() when it reached this member
        self.body = raw.body
        wire = raw.headers or {}
        # pamqp hands strings as str and tidings' numbers as int: convert only what is not
        self.headers: dict[str, str] = {
            k: v if type(v) is str else _text(v)
            for k, v in wire.items()
            if k not in INTERNAL_HEADERS
        }
        self.redrive_group = self.headers.pop(H.REDRIVE_GROUP, None)
        self.id = _text(wire.get(H_ID) or raw.message_id or f"amqp-{raw.delivery_tag}")
        key = wire.get(H_KEY)
        self.key = None if key is None else _text(key)
        mid = wire.get(H_MSG_ID)
        self.msg_id = None if mid is None else _text(mid)
        self.partition = _int(wire.get(H_PARTITION))
        self.offset = _int(wire.get(H_OFFSET))
        self.timestamp = _float(wire.get(H_TIME)) or time.time()
        ttl = wire.get(H_TTL)  # mostly absent: nothing to parse then
        self.expires_at = None if ttl is None else expires_at(self.timestamp, seconds(_text(ttl)))
        # quorum queues count the earlier returns (requeues and members that went away)
        self.count = _int(wire.get(DELIVERY_COUNT)) + 1
        # why RabbitMQ dead-lettered it (x-death), when it did
        deaths = wire.get(X_DEATH)
        death = deaths[0] if isinstance(deaths, list) and deaths else None
        self.death = None if not isinstance(death, dict) else _text(death.get("reason", ""))

    def delivery(self, topic: str, group: str, count: int, lease_until: float | None) -> Delivery:
        return Delivery(
            topic=topic,
            group=group,
            partition=self.partition,
            offset=self.offset,
            id=self.id,
            key=self.key,
            headers=self.headers,
            body=self.body,
            timestamp=self.timestamp,
            delivery_count=count,
            msg_id=self.msg_id,
            lease_until=lease_until,
        )
