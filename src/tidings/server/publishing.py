"""PUBLISH on the broker: coalescing pipelined publish frames and answering with receipts.

Consecutive PUBLISH frames for one topic in one read form a *run* that becomes one engine
call (one append, one group commit). The engine appends all or nothing, so when a run fails
for a reason that concerns one frame (a bad message, an unknown topic) each frame is retried
alone and gets its own answer. Storage errors fail the whole run: its messages may be
appended but not durable, and their producers retry with the same ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import BadRequest, StorageError, TidingsError
from ..model import Outgoing, Receipt
from ..names import is_reply_topic
from ..protocol import constants as c
from ..protocol import decode_body
from ..protocol.framing import Frame
from ..protocol.messages import Publish
from . import replies, rights

if TYPE_CHECKING:
    from .connection import ClientConnection

log = logging.getLogger("tidings.server")
_REPLY = c.PUBLISH | c.REPLY_BIT


class Run:
    __slots__ = ("batches", "request_ids", "size", "topic")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.size = 0  # PUBLISH payload bytes (the metrics' published bytes)
        self.request_ids: list[int] = []
        self.batches: list[Sequence[Outgoing]] = []  # each frame's WireOutgoing list


def collect(conn: ClientConnection, frame: Frame, run: Run | None) -> Run | None:
    """Add a PUBLISH frame to the current run (starting the run first if the topic changes)."""
    try:
        body = decode_body(frame, Publish)
        admit(conn, body, len(frame.payload))
    except TidingsError as exc:
        conn.error(frame.request_id, exc)
        return run
    if run is not None and run.topic != body.topic:
        start(conn, run)
        run = None
    if run is None:
        run = Run(body.topic)
    run.request_ids.append(frame.request_id)
    run.size += len(frame.payload)
    run.batches.append(body.messages)
    return run


def admit(conn: ClientConnection, body: Publish, size: int) -> None:
    """Refuse a PUBLISH over the batch limit, during a resource alarm (or one its ``size``
    bytes would raise), or without permission."""
    limit = conn.server.config.max_batch
    if len(body.messages) > limit:
        raise BadRequest(
            f"a PUBLISH of {len(body.messages)} messages exceeds the broker's max batch of "
            f"{limit}: send smaller batches (or raise --max-batch)"
        )
    topic = body.topic
    if is_reply_topic(topic):  # only as the reply to a request that named it
        replies.admit_publish(conn, topic, len(body.messages))
    elif conn.user is not None and topic not in conn.may_publish:
        rights.require(conn, "publish", topic)
        conn.may_publish.add(topic)
    conn.server.alarms.refuse_publish(size)  # last: what it admits counts as pending bytes


def start(conn: ClientConnection, run: Run) -> None:
    task = asyncio.get_running_loop().create_task(_publish_run(conn, run))
    conn.tasks.add(task)
    task.add_done_callback(conn.tasks.discard)


def _reply(conn: ClientConnection, rid: int, receipts: list[Receipt]) -> None:
    conn.write(_REPLY, rid, ([(r.partition, r.offset, r.id, r.duplicate) for r in receipts],))


async def _publish_run(conn: ClientConnection, run: Run) -> None:
    """Publish a run and, when it all succeeded, count it for the metrics (once per run:
    its latency from the append to the confirm, for each of its frames, and its bytes)."""
    began = time.perf_counter()
    try:
        published = await _publish_frames(conn, run)
    finally:
        conn.server.alarms.written(run.size)
    if not published:
        return
    server = conn.server
    server.publish_latency.observe(time.perf_counter() - began, len(run.request_ids))
    sizes = server.published_bytes
    sizes[run.topic] = sizes.get(run.topic, 0) + run.size


async def _publish_one(
    conn: ClientConnection, topic: str, rid: int, batch: Sequence[Outgoing]
) -> bool:
    try:
        receipts = await conn.server.runtime.publish(topic, batch, conn.origin)
    except TidingsError as exc:
        conn.error(rid, exc)
    except Exception as exc:
        log.exception("publishing to %r failed", topic)
        conn.error(rid, TidingsError(f"internal error: {type(exc).__name__}: {exc}"))
    else:
        _reply(conn, rid, receipts)
        return True
    return False


async def _publish_frames(conn: ClientConnection, run: Run) -> bool:
    """True when every frame of the run was published."""
    if len(run.request_ids) == 1:
        return await _publish_one(conn, run.topic, run.request_ids[0], run.batches[0])
    combined = [message for batch in run.batches for message in batch]
    try:
        receipts = await conn.server.runtime.publish(run.topic, combined, conn.origin)
    except StorageError as exc:
        for rid in run.request_ids:
            conn.error(rid, exc)
        return False
    except TidingsError:  # nothing was appended: let each frame succeed or fail alone
        await asyncio.gather(
            *(
                _publish_one(conn, run.topic, rid, batch)
                for rid, batch in zip(run.request_ids, run.batches, strict=True)
            )
        )
        return False
    except Exception as exc:
        log.exception("publishing to %r failed", run.topic)
        for rid in run.request_ids:
            conn.error(rid, TidingsError(f"internal error: {type(exc).__name__}: {exc}"))
        return False
    pos = 0
    for rid, batch in zip(run.request_ids, run.batches, strict=True):
        end = pos + len(batch)
        _reply(conn, rid, receipts[pos:end])
        pos = end
    return True
