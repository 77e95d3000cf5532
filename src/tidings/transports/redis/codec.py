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


# the field names as they come back from the server (replies are bytes)
_B_BODY, _B_HEADERS, _B_ID, _B_KEY = (f.encode() for f in (F_BODY, F_HEADERS, F_ID, F_KEY))
_B_MSG_ID, _B_TS, _B_TTL, _B_DELAY = (f.encode() for f in (F_MSG_ID, F_TS, F_TTL, F_DELAY))


def _seconds(value: bytes) -> float | None:
    return timing.seconds(value.decode())


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
        "offset",
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
        get = fields.get
        self.body = get(_B_BODY, b"")
        raw = get(_B_HEADERS)
        if raw is None:
            self.headers: dict[str, str] = {}
            self.redrive_group: str | None = None
        else:
            self.headers = _headers.decode(raw)
            self.redrive_group = self.headers.pop(REDRIVE_GROUP, None)
        mid = get(_B_ID)
        self.id = (mid.decode() if mid is not None else "") or f"{partition}:{entry}"
        key = get(_B_KEY)
        self.key = None if key is None else key.decode()
        msg_id = get(_B_MSG_ID)
        self.msg_id = None if msg_id is None else msg_id.decode()
        self.timestamp = int(get(_B_TS, b"0")) / 1000.0
        ttl, delay = get(_B_TTL), get(_B_DELAY)  # mostly absent: nothing to parse then
        self.expires_at = None if ttl is None else timing.expires_at(self.timestamp, _seconds(ttl))
        self.deliver_at = (
            None if delay is None else timing.deliver_at(self.timestamp, _seconds(delay))
        )
        self.offset = offset_of(entry)

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
