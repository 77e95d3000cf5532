"""The message trace as data: one :class:`TraceEvent` per thing that happened to a message
on the built-in broker, and a :class:`Trace` (a query's answer). Shared by the broker, the
protocol, the HTTP API, the clients and the CLI; docs/tracing.md explains the events."""

from __future__ import annotations

import msgspec

EVENTS = (
    "published",
    "delivered",
    "redelivered",
    "acked",
    "nacked",
    "lease-expired",
    "rejected",
    "expired",
    "dead-lettered",
    "redriven",
)


class TraceEvent(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """One thing that happened to one message (``event`` is one of ``EVENTS``)."""

    seq: int  # grows by one per event of this broker run
    time: float  # seconds since the epoch
    event: str
    topic: str
    partition: int
    offset: int
    id: str  # the broker's message id
    group: str | None = None
    member: str | None = None
    consumer: str | None = None  # the member's connection (peer, user, client)
    deliveries: int | None = None  # the delivery count (deliveries and what settles them)
    reason: str | None = None  # the consumer's error, the reject or dead-letter reason
    delay: float | None = None  # a nack's retry delay, seconds
    target: str | None = None  # dead-lettered: the dead-letter topic
    target_id: str | None = None  # dead-lettered: the copy's id there
    # published only: who sent it and what ties it to other messages
    origin: str | None = None  # the publishing connection (or "http", "broker")
    msg_id: str | None = None
    key: str | None = None
    type: str | None = None  # tidings-type header: event, command, request, reply, ...
    trace_id: str | None = None  # from the W3C traceparent header
    parent_id: str | None = None  # the traceparent's span id
    correlation_id: str | None = None
    reply_to: str | None = None
    source_id: str | None = None  # a dead-letter copy: the original message's id


class Trace(msgspec.Struct, kw_only=True):
    """The answer to a trace query: the events asked for, in the order they happened, and
    (for one message) those of the messages of its conversation and its dead-letter copies."""

    events: list[TraceEvent]
    related: list[TraceEvent] = msgspec.field(default_factory=list)
    last_seq: int = 0  # the ring's newest event: follow a topic from here
    dropped: int = 0  # events that fell off the ring since the broker started


def describe(e: TraceEvent) -> str:
    """What else an event says, in a few words."""
    parts: list[str] = []
    if e.event in ("published", "redriven"):
        for label, value in (("by", e.origin), ("msg_id", e.msg_id), ("key", e.key),
                             ("type", e.type), ("correlation", e.correlation_id),
                             ("trace", e.trace_id), ("reply-to", e.reply_to),
                             ("copy of", e.source_id)):  # fmt: skip
            if value:
                parts.append(f"{label} {value}")
    if e.reason:
        parts.append(e.reason)
    if e.consumer and e.event in ("delivered", "redelivered"):
        parts.append(f"to {e.consumer}")
    if e.delay:
        parts.append(f"retry in {e.delay:g} s")
    if e.target:
        parts.append(f"to {e.target} as {e.target_id}")
    return ", ".join(parts)
