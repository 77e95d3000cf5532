"""Messages as stream entries and back.

A message is one stream entry with the fields of :mod:`.naming` (``id``, ``b`` body, ``k``
key, ``h`` headers as JSON, ``m`` producer id, ``ttl``, ``dl`` delay, ``ts`` the server's
time at ``XADD``); TTL and delay count from ``ts`` (the shared rules of
:mod:`tidings.transports.rules.timing`), so publishers' clocks never matter.
"""

from __future__ import annotations

import secrets

import msgspec

from ...headers import REDRIVE_GROUP
from ...model import Delivery, Outgoing
from ..rules import timing
from .naming import F_BODY, F_DELAY, F_HEADERS, F_ID, F_KEY, F_MSG_ID, F_TS, F_TTL, offset_of

_json = msgspec.json.Encoder()
_headers = msgspec.json.Decoder(dict[str, str])


def new_id() -> str:
    """A unique message id (22 characters, URL-safe base64 of 16 random bytes)."""
    return secrets.token_urlsafe(16)


def fields_of(message: Outgoing, mid: str | None = None) -> list[bytes | str]:
    """The entry fields (flat: name, value, ...) of ``message`` under id ``mid`` (new if None)."""
    out: list[bytes | str] = [F_ID, mid or new_id(), F_BODY, message.body]
    if message.key is not None:
        out += [F_KEY, message.key]
    if message.headers:
        out += [F_HEADERS, _json.encode(message.headers)]
    if message.msg_id is not None:
        out += [F_MSG_ID, message.msg_id]
    ttl = timing.ttl_text(message.ttl)
    if ttl is not None:
        out += [F_TTL, ttl]
    delay = timing.delay_text(message.delay)
    if delay is not None:
        out += [F_DELAY, delay]
    return out


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


class Entry:
    """A delivered stream entry, decoded once."""

    __slots__ = (
        "arrived",
        "body",
        "deliver_at",
        "entry",
        "expires_at",
        "headers",
        "id",
        "key",
        "msg_id",
        "partition",
        "raw_count",
        "redrive_group",
        "skips",
        "timestamp",
    )

    def __init__(
        self,
        partition: int,
        entry: str,
        fields: dict[bytes, bytes],
        raw_count: int,
        skips: int,
        arrived: float,
    ) -> None:
        self.partition = partition
        self.entry = entry
        self.raw_count = raw_count  # deliveries the server counted (XPENDING)
        self.skips = skips  # early deliveries of a delayed message, not counted
        self.arrived = arrived  # time.monotonic() when it reached this member
        self.body = fields.get(F_BODY.encode(), b"")
        raw = fields.get(F_HEADERS.encode())
        self.headers: dict[str, str] = {} if raw is None else _headers.decode(raw)
        self.redrive_group = self.headers.pop(REDRIVE_GROUP, None)
        self.id = _text(fields.get(F_ID.encode())) or f"{partition}:{entry}"
        self.key = _text(fields.get(F_KEY.encode()))
        self.msg_id = _text(fields.get(F_MSG_ID.encode()))
        self.timestamp = int(fields.get(F_TS.encode(), b"0")) / 1000.0
        ttl = timing.seconds(_text(fields.get(F_TTL.encode())))
        delay = timing.seconds(_text(fields.get(F_DELAY.encode())))
        self.expires_at = timing.expires_at(self.timestamp, ttl)
        self.deliver_at = timing.deliver_at(self.timestamp, delay)

    @property
    def offset(self) -> int:
        return offset_of(self.entry)

    @property
    def count(self) -> int:
        """Deliveries the application had of it, this one included."""
        return self.raw_count - self.skips

    def delivery(self, topic: str, group: str, lease_until: float | None) -> Delivery:
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
            delivery_count=self.count,
            msg_id=self.msg_id,
            lease_until=lease_until,
        )
