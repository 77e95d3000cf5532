"""The management API's own models (msgspec Structs, like the protocol's): what the API
answers beyond the broker's TopicInfo/GroupInfo/TopicSpec, and the bodies it accepts. The
OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Annotated

import msgspec

from ...model import StartKind


class Alarms(msgspec.Struct, kw_only=True):
    memory: str | None  # why publishes are refused, while the memory alarm is raised
    disk: str | None
    resident_memory_bytes: int
    memory_high_watermark_bytes: int  # 0: off
    disk_free_bytes: int | None
    disk_free_limit_bytes: int  # 0: off


class Overview(msgspec.Struct, kw_only=True):
    version: str
    uptime_seconds: float
    connections: int
    subscriptions: int
    topics: int
    groups: int
    messages: int
    storage_bytes: int
    publish_rate: float  # messages per second, last 10 seconds, all topics
    deliver_rate: float
    ack_rate: float
    ready: int
    in_flight: int
    alarms: Alarms


class Message(msgspec.Struct, kw_only=True):
    """A stored message, read without consuming it. ``body`` is the UTF-8 text of the body,
    or null when it is not text; ``body_base64`` always carries it."""

    topic: str
    partition: int
    offset: int
    id: str
    timestamp: float
    key: str | None
    headers: dict[str, str]
    body: str | None
    body_base64: str
    size: int
    msg_id: str | None = None
    deliver_at: float | None = None
    expires_at: float | None = None


class MessagePage(msgspec.Struct, kw_only=True):
    messages: list[Message]
    next_offset: int  # where the next page of this partition starts
    first_offset: int  # the partition's oldest offset still stored
    end_offset: int  # the partition's next offset (one past the newest)


class PublishBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A test message: ``body`` as text (UTF-8) or ``body_base64``, not both."""

    body: str | None = None
    body_base64: str | None = None
    key: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    msg_id: str | None = None
    ttl: float | None = None
    delay: float | None = None


class ResetBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where the group starts over: earliest, latest, an offset, or a time (epoch seconds)."""

    start: StartKind = "earliest"
    start_value: float | None = None


class Member(msgspec.Struct, kw_only=True):
    member_id: str
    connection: str
    peer: str
    client: str
    user: str | None


class Connection(msgspec.Struct, kw_only=True):
    id: str
    peer: str
    client: str
    user: str | None
    age_seconds: float
    subscriptions: int
    write_buffer_bytes: int
    paused: bool
    frames_in: int
    frames_out: int


class DeadLetter(msgspec.Struct, kw_only=True):
    """A dead letter of a group that waits (not redriven nor purged), as it was before it
    died (original id, producer id, key, headers without the ``tidings-dlq-*`` ones, body),
    with why and when. ``body`` is its UTF-8 text or null; ``body_base64`` always carries it.
    ``partition``/``offset``: where it sat in the group's topic."""

    id: str
    msg_id: str | None
    key: str | None
    headers: dict[str, str]
    body: str | None
    body_base64: str
    size: int
    reason: str
    deliveries: int
    error: str | None
    dead_lettered_at: float
    partition: int
    offset: int


MAX_IDS = 10_000


class DeadLetterSelection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which dead letters: the ``ids`` given, or else every one (the oldest ``limit`` with a
    limit). An empty body means all of them."""

    ids: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_IDS)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_IDS)] | None = None


class Redriven(msgspec.Struct, kw_only=True):
    count: int
    ids: list[str]  # the message ids that went back (redrive) or were dropped (purge)


class MessageDeleted(msgspec.Struct, kw_only=True):
    """A message deleted by id: where it sat, and the groups that had not settled it yet
    (now settled: none of the topic's groups delivers it again)."""

    id: str
    partition: int
    offset: int
    groups: list[str]


class Purged(msgspec.Struct, kw_only=True):
    """A purged topic: the stored messages dropped, and the groups moved past them."""

    topic: str
    count: int
    groups: list[str]
