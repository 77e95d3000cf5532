"""Messages on the wire: tidings messages as JetStream messages and back.

A tidings message travels as the NATS payload (the body) plus headers: the application's
headers (values NATS cannot carry are base64-escaped), the broker-assigned id, the key, the TTL
and the delay in seconds (counted from the server's publish timestamp, so the publisher's clock
never matters), and the producer message id as ``Nats-Msg-Id`` (what JetStream deduplicates
on). Delivered messages carry their stream, consumer, sequence, delivery count and publish time
in the reply subject, parsed by :class:`naming.AckReply`.
"""

from __future__ import annotations

from nats.aio.msg import Msg
from nats.js.api import RawStreamMsg
from nats.nuid import NUID

from ...errors import BadRequest, TidingsError
from ...headers import REDRIVE_GROUP
from ...model import Delivery, Outgoing
from ..rules import timing
from .naming import (
    H_DELAY,
    H_ID,
    H_KEY,
    H_MSG_ID,
    H_TTL,
    INTERNAL_HEADERS,
    NATS_MSG_ID,
    AckReply,
    escape_value,
    partition_of,
    unescape_value,
    valid_header_name,
)

_nuid = NUID()


def new_id() -> str:
    """A unique message id (a NATS NUID: 22 characters, base62)."""
    return _nuid.next().decode()


def wire_headers(message: Outgoing, msg_id_dedup: bool) -> tuple[str, dict[str, str]]:
    """(the message's id, its NATS headers)."""
    headers: dict[str, str] = {}
    for name, value in message.headers.items():
        if not valid_header_name(name) or name in INTERNAL_HEADERS:
            raise BadRequest(
                f"header name {name!r} cannot travel over nats://: use printable ASCII without "
                "':' or spaces, and not a tidings-reserved name"
            )
        headers[name] = escape_value(value)
    mid = new_id()
    headers[H_ID] = mid
    if message.key is not None:
        headers[H_KEY] = escape_value(message.key)
    if message.msg_id is not None:
        headers[NATS_MSG_ID if msg_id_dedup else H_MSG_ID] = escape_value(message.msg_id)
    ttl = timing.ttl_text(message.ttl)
    if ttl is not None:
        headers[H_TTL] = ttl
    delay = timing.delay_text(message.delay)
    if delay is not None:
        headers[H_DELAY] = delay
    return mid, headers


def stored_seq(raw: RawStreamMsg) -> int:
    """The stream sequence of a message read from a stream (nats-py types it optional; JetStream
    always sends it with a stored message)."""
    if raw.seq is None:
        raise TidingsError(f"JetStream returned a message of {raw.stream} without its sequence")
    return raw.seq


def stored_subject(raw: RawStreamMsg) -> str:
    """The subject of a message read from a stream (optional in nats-py, as its sequence)."""
    if raw.subject is None:
        raise TidingsError(f"JetStream returned a message of {raw.stream} without its subject")
    return raw.subject


class Incoming:
    """A delivered JetStream message, decoded once."""

    __slots__ = (
        "ack",
        "arrived",
        "body",
        "deliver_at",
        "expires_at",
        "headers",
        "id",
        "key",
        "msg_id",
        "partition",
        "redrive_group",
        "reply",
    )

    def __init__(self, msg: Msg, arrived: float) -> None:
        self.reply: str = msg.reply
        self.ack = AckReply(msg.reply)
        self.arrived = arrived  # time.monotonic() when it reached this member
        self.body = msg.data
        self.partition = partition_of(msg.subject)
        raw = msg.headers or {}
        self.headers: dict[str, str] = {
            k: unescape_value(v) for k, v in raw.items() if k not in INTERNAL_HEADERS
        }
        # a redrive for one group (tidings.headers.redrive_skips); the application never sees it
        self.redrive_group = self.headers.pop(REDRIVE_GROUP, None)
        self.id = raw.get(H_ID) or f"{self.ack.stream}:{self.ack.stream_seq}"
        key = raw.get(H_KEY)
        self.key = None if key is None else unescape_value(key)
        mid = raw.get(NATS_MSG_ID) or raw.get(H_MSG_ID)
        self.msg_id = None if mid is None else unescape_value(mid)
        stored = self.ack.timestamp
        self.expires_at = timing.expires_at(stored, timing.seconds(raw.get(H_TTL)))
        self.deliver_at = timing.deliver_at(stored, timing.seconds(raw.get(H_DELAY)))

    @property
    def offset(self) -> int:
        return self.ack.stream_seq - 1

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
            timestamp=self.ack.timestamp,
            delivery_count=count,
            msg_id=self.msg_id,
            lease_until=lease_until,
        )
