"""The ``/api/v1/trace`` resources: the message trace's settings (which topics are traced,
the sample; changed at run time by an operator), one message's path with its conversation,
a conversation by correlation id or W3C trace id, and the newest events (of one topic or all)
after a sequence number, which is how ``tidings trace --follow`` and the dashboard follow.
Only events of topics the caller may subscribe to are answered (``server/tracing.py``)."""

from __future__ import annotations

import msgspec

from ...trace import Trace
from ..tracing import configure, lookup
from . import access
from .endpoints import Call, Endpoint, Query

PREFIX = "/api/v1/trace"


class TraceSettings(msgspec.Struct, kw_only=True):
    """What to trace: topic patterns (``*`` one segment, ``>`` the rest; ``[">"]`` every
    topic, ``[]`` off) and the fraction of their messages (by a hash of the message id)."""

    topics: list[str]
    sample: float | None = None  # None: keep the current sample


class TraceStatus(msgspec.Struct, kw_only=True):
    topics: list[str]  # the patterns traced; [] when tracing is off
    sample: float
    size: int  # events the ring keeps at most
    events: int  # events it holds now
    dropped: int  # events that fell off it since the broker started
    last_seq: int  # the newest event's sequence number


def _status(call: Call) -> TraceStatus:
    t = call.server.tracer
    return TraceStatus(
        topics=list(t.patterns),
        sample=t.sample,
        size=t.size,
        events=len(t),
        dropped=t.dropped,
        last_seq=t.seq,
    )


async def status(call: Call) -> TraceStatus:
    access.require_monitor(call.user, call.request)
    return _status(call)


async def change(call: Call) -> TraceStatus:
    access.require_operator(call.user, call.request)
    body: TraceSettings = call.body
    configure(call.server.runtime.broker, call.server.tracer, tuple(body.topics), body.sample)
    return _status(call)


async def message(call: Call) -> Trace:
    return lookup(call.server.tracer, "message", call.path["id"], user=call.user)


async def conversation(call: Call) -> Trace:
    return lookup(call.server.tracer, "conversation", call.path["conversation"], user=call.user)


async def events(call: Call) -> Trace:
    topic = call.query["topic"] or ""
    if topic:
        access.require(call.user, call.request, "subscribe", topic)
    q = call.query
    return lookup(
        call.server.tracer, "topic", topic, after=q["after"], limit=q["limit"], user=call.user
    )


ENDPOINTS = [
    Endpoint("GET", PREFIX, "Message tracing: what is traced, how full the ring is", "trace",
             status, TraceStatus),
    Endpoint("PUT", PREFIX, "Change which topics are traced (operators)", "trace", change,
             TraceStatus, body=TraceSettings),
    Endpoint("GET", PREFIX + "/events", "Trace events after a sequence number (follow)",
             "trace", events, Trace,
             query=(Query("topic", str, None, "only this topic's events (default: all)"),
                    Query("after", int, 0, "events with a sequence number above this "
                          "(-1: the newest)", -1),
                    Query("limit", int, 1000, "events at most (up to 10000)", 1))),
    Endpoint("GET", PREFIX + "/conversations/{conversation}", "A conversation's messages "
             "(by correlation id or W3C trace id)", "trace", conversation, Trace),
    Endpoint("GET", PREFIX + "/{id}", "A message's path (by message id or producer msg_id), "
             "with the other messages of its conversation", "trace", message, Trace),
]  # fmt: skip
