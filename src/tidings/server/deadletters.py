"""DEAD_LETTERS, REDRIVE and DISCARD_DEAD_LETTERS on the broker: a group's dead letters.

Listing needs the subscribe right on the origin topic (the group's default dead-letter topic
belongs to the group, see docs/security.md); a redrive writes into the origin topic, so it
needs the publish right there; discarding destroys messages, so it needs admin. REDRIVE and
DISCARD answer once what they did is durable (a coroutine the connection runs as a task).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ..errors import BadRequest
from ..protocol import messages as m
from . import rights

if TYPE_CHECKING:
    from .connection import ClientConnection


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise BadRequest(f"limit must be >= 1, got {limit}")


def dead_letters(conn: ClientConnection, body: m.DeadLettersOf) -> m.DeadLetterList:
    rights.require_subscribe(conn, body.topic)
    _check_limit(body.limit)
    return m.DeadLetterList(conn.broker.dead_letters(body.topic, body.group, body.limit))


def redrive(conn: ClientConnection, body: m.RedriveOf) -> Coroutine[Any, Any, m.MessageIds]:
    rights.require_write_target(conn, body.topic, "redrive target")
    _check_limit(body.limit)
    conn.server.alarms.refuse_publish()  # a redrive writes: not while an alarm is raised
    conn.broker.dead_letter_topic_of(body.topic, body.group)  # NotFound before the task

    async def run() -> m.MessageIds:
        runtime = conn.server.runtime
        return m.MessageIds(await runtime.redrive(body.topic, body.group, body.ids, body.limit))

    return run()


def discard(conn: ClientConnection, body: m.RedriveOf) -> Coroutine[Any, Any, m.MessageIds]:
    rights.require(conn, "admin", body.topic)
    _check_limit(body.limit)
    conn.broker.dead_letter_topic_of(body.topic, body.group)

    async def run() -> m.MessageIds:
        runtime = conn.server.runtime
        ids = await runtime.discard_dead_letters(body.topic, body.group, body.ids, body.limit)
        return m.MessageIds(ids)

    return run()
