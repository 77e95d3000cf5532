"""A group's dead letters on nats://: listing, redriving and discarding them.

The group's dead-letter topic is a stream like any other (see ``deadletter``). Listing reads
it without a consumer (``STREAM.MSG.GET`` with ``next_by_subj``, so deleted messages cost
nothing), keeping the messages whose ``tidings-dlq-topic``/``-group`` headers name the group.
A redrive publishes each dead letter to its origin topic, in the partition it came from,
under its original message id (``tidings-id``) and producer id (as ``tidings-msg-id``, so
JetStream's dedup does not drop it), with the header ``tidings-redrive-group`` that makes the
topic's other groups skip it (:func:`tidings.headers.redrive_skips`); once JetStream confirmed
the republish, the dead letter is deleted from the dead-letter stream, so it is listed and
redriven once. A crash between the two redrives it again on the next call: at least once,
never lost. Discarding deletes without a republish. Dead letters that ``tidings dlq replay``
acknowledged (its group's ack floor) count as gone back, as on the built-in broker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import nats.js.errors
from nats.js import api

from ... import headers as H
from ...errors import BadRequest, NotFound
from ...model import DeadLetter, Outgoing
from ...partitioning import partition_for
from .codec import stored_seq, wire_headers
from .errors import translated
from .naming import (
    H_ID,
    H_KEY,
    INTERNAL_HEADERS,
    consumer_name,
    stream_name,
    subject,
    subjects_of,
    unescape_value,
)

if TYPE_CHECKING:
    from .transport import NatsTransport

MAX_REDRIVE = 10_000  # dead letters per call at most, as on the built-in broker

Waiting = tuple[int, DeadLetter]  # (sequence in the dead-letter stream, the dead letter)


def _time(value: object) -> float:
    """A JetStream message time (a datetime, or RFC 3339 text) as epoch seconds (0.0 if not)."""
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return stamp.timestamp()
    if not isinstance(value, str) or not value:
        return 0.0
    head, _, frac = value.rstrip("Z").partition(".")
    try:
        stamp = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)
    except ValueError:
        return 0.0
    return stamp.timestamp() + (float("0." + frac) if frac.isdigit() else 0.0)


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _letter(raw: api.RawStreamMsg) -> tuple[str | None, str | None, DeadLetter]:
    """(origin topic, group, the dead letter) of a stored dead-letter message."""
    wire = raw.headers or {}
    hd = {k: unescape_value(v) for k, v in wire.items() if k not in INTERNAL_HEADERS}
    key = wire.get(H_KEY)
    letter = DeadLetter(
        id=hd.get(H.DLQ_ID) or wire.get(H_ID) or f"{raw.stream}:{raw.seq}",
        msg_id=hd.get(H.DLQ_MSG_ID),
        key=None if key is None else unescape_value(key),
        headers={
            k: v for k, v in hd.items() if not k.startswith(H.DLQ_PREFIX) and k != H.REDRIVE_GROUP
        },
        body=raw.data or b"",
        reason=hd.get(H.DLQ_REASON, ""),
        deliveries=_int(hd.get(H.DLQ_DELIVERIES)),
        error=hd.get(H.DLQ_ERROR),
        dead_lettered_at=_time(raw.time),
        partition=_int(hd.get(H.DLQ_PARTITION)),
        offset=_int(hd.get(H.DLQ_OFFSET), -1),
    )
    return hd.get(H.DLQ_TOPIC), hd.get(H.DLQ_GROUP), letter


async def _dead_letter_topic(t: NatsTransport, topic: str, group: str) -> str:
    _spec, gspec, _ = await t._group(topic, group)  # NotFound for an unknown group
    return gspec.dead_letter_topic or H.dead_letter_topic(topic, group)


async def _replayed_up_to(t: NatsTransport, stream: str) -> int:
    """The ack floor (stream sequence) of 'tidings dlq replay' on ``stream`` (0: none)."""
    try:
        info = await t.js.consumer_info(stream, consumer_name(H.REPLAY_GROUP))
    except nats.js.errors.NotFoundError:
        return 0
    floor = info.ack_floor
    return (floor.stream_seq or 0) if floor is not None else 0


async def waiting(
    t: NatsTransport, topic: str, group: str, limit: int
) -> tuple[str, list[Waiting]]:
    """(the dead-letter topic, up to ``limit`` of ``group``'s dead letters there, oldest first)."""
    dlq = await _dead_letter_topic(t, topic, group)
    stream = stream_name(dlq)
    out: list[Waiting] = []
    with translated(f"dead letters of group {group!r} of topic {topic!r}"):
        try:
            info = await t.js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return dlq, out  # nothing was dead-lettered yet: the topic is created on demand
        state = info.state
        seq = max(state.first_seq, await _replayed_up_to(t, stream) + 1)
        while seq <= state.last_seq and len(out) < limit:
            try:
                raw = await t.js.get_msg(stream, seq=seq, subject=subjects_of(dlq), next=True)
            except nats.js.errors.NotFoundError:
                break  # no message at or after seq
            origin, of_group, letter = _letter(raw)
            at = stored_seq(raw)
            if origin == topic and of_group == group:
                out.append((at, letter))
            seq = at + 1
    return dlq, out


async def _select(
    t: NatsTransport, topic: str, group: str, ids: Sequence[str] | None, limit: int | None
) -> tuple[str, list[Waiting]]:
    cap = MAX_REDRIVE if limit is None else limit
    if cap < 1:
        raise BadRequest("limit must be >= 1")
    if ids is not None and not ids:
        raise BadRequest("ids is empty: give the ids to act on, or none for every one")
    dlq, found = await waiting(t, topic, group, MAX_REDRIVE if ids else cap)
    if ids:
        scanned = len(found)
        wanted = set(ids)
        found = [(s, d) for s, d in found if d.id in wanted]
        missing = sorted(wanted - {d.id for _, d in found})
        if missing:
            capped = (
                f"; only the oldest {MAX_REDRIVE} are searched: redrive those first"
                if scanned >= MAX_REDRIVE
                else ""
            )
            raise NotFound(
                f"no dead letter with id {', '.join(missing)} waits for group {group!r} of "
                f"topic {topic!r} (already redriven or discarded, or not a dead letter of "
                f"this group): list them with dead_letters({topic!r}, {group!r}){capped}"
            )
        found = found[:cap]
    return dlq, found


async def _delete(t: NatsTransport, dlq: str, done: list[Waiting]) -> None:
    stream = stream_name(dlq)
    for seq, _ in done:
        try:
            await t.js.delete_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            pass  # deleted meanwhile (another redrive, retention)


async def dead_letters(t: NatsTransport, topic: str, group: str, limit: int) -> list[DeadLetter]:
    if limit < 1:
        raise BadRequest("limit must be >= 1")
    _, found = await waiting(t, topic, group, limit)
    return [d for _, d in found]


async def redrive(
    t: NatsTransport, topic: str, group: str, ids: Sequence[str] | None, limit: int | None
) -> list[str]:
    dlq, found = await _select(t, topic, group, ids, limit)
    if not found:
        return []
    spec = await t._spec(topic)
    futures = []
    with translated(f"redrive to group {group!r} of topic {topic!r}"):
        for _, d in found:
            out = Outgoing(d.body, d.key, {**d.headers, H.REDRIVE_GROUP: group}, d.msg_id)
            _, headers = wire_headers(out, msg_id_dedup=False)  # no dedup on the original id
            headers[H_ID] = d.id  # the original message id
            p = d.partition
            if not 0 <= p < spec.partitions:
                p = partition_for(d.key, spec.partitions) if d.key is not None else 0
            futures.append(await t.publisher.send(subject(topic, p), d.body, headers))
        await asyncio.wait_for(asyncio.gather(*futures), t._publish_timeout)
        await _delete(t, dlq, found)  # only now: the republish is confirmed
    return [d.id for _, d in found]


async def discard(
    t: NatsTransport, topic: str, group: str, ids: Sequence[str] | None, limit: int | None
) -> list[str]:
    dlq, found = await _select(t, topic, group, ids, limit)
    with translated(f"discard dead letters of group {group!r} of topic {topic!r}"):
        await _delete(t, dlq, found)
    return [d.id for _, d in found]
