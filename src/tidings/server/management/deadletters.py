"""The dead-letter resources of ``/api/v1``: a group's dead letters, their redrive back to
that group only, and their purge, with the protocol's rights (docs/operations.md):
listing needs subscribe on the topic, a redrive publish, a purge admin. Redrive and purge
answer once what they did is durable."""

from __future__ import annotations

import base64

from ...model import DeadLetter as Letter
from . import access
from .endpoints import Call, Endpoint, Query
from .schemas import DeadLetter, DeadLetterSelection, Redriven

MAX_LIST = 1000


def _view(d: Letter) -> DeadLetter:
    try:
        text: str | None = d.body.decode()
    except UnicodeDecodeError:
        text = None
    return DeadLetter(
        id=d.id,
        msg_id=d.msg_id,
        key=d.key,
        headers=d.headers,
        body=text,
        body_base64=base64.b64encode(d.body).decode(),
        size=len(d.body),
        reason=d.reason,
        deliveries=d.deliveries,
        error=d.error,
        dead_lettered_at=d.dead_lettered_at,
        partition=d.partition,
        offset=d.offset,
    )


async def list_dead_letters(call: Call) -> list[DeadLetter]:
    topic, group = call.path["topic"], call.path["group"]
    access.require(call.user, call.request, "subscribe", topic)
    broker = call.server.runtime.broker
    return [_view(d) for d in broker.dead_letters(topic, group, min(call.query["limit"], MAX_LIST))]


async def redrive(call: Call) -> Redriven:
    topic, group = call.path["topic"], call.path["group"]
    access.require(call.user, call.request, "publish", topic)
    body: DeadLetterSelection = call.body
    call.server.alarms.refuse_publish()  # a redrive writes: not while an alarm is raised
    ids = await call.server.runtime.redrive(topic, group, body.ids, body.limit)
    return Redriven(count=len(ids), ids=ids)


async def purge(call: Call) -> Redriven:
    topic, group = call.path["topic"], call.path["group"]
    access.require(call.user, call.request, "admin", topic)
    body: DeadLetterSelection = call.body
    ids = await call.server.runtime.discard_dead_letters(topic, group, body.ids, body.limit)
    return Redriven(count=len(ids), ids=ids)


def endpoints(group_path: str) -> list[Endpoint]:
    """The endpoints under ``group_path`` (``.../topics/{topic}/groups/{group}``)."""
    base = group_path + "/dead-letters"
    return [
        Endpoint("GET", base, "A group's dead letters that wait, oldest first", "dead letters",
                 list_dead_letters, list[DeadLetter],
                 query=(Query("limit", int, 50, f"dead letters at most (up to {MAX_LIST})", 1),)),
        Endpoint("POST", base + "/redrive", "Send dead letters back to this group only, under "
                 "their original ids (all, the ids given, or the oldest limit)", "dead letters",
                 redrive, Redriven, body=DeadLetterSelection, optional_body=True),
        Endpoint("POST", base + "/purge", "Drop dead letters for good (all, the ids given, or "
                 "the oldest limit)", "dead letters", purge, Redriven, body=DeadLetterSelection,
                 optional_body=True),
    ]  # fmt: skip
