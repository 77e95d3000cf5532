"""A group's dead letters on redis://: listing, redriving and discarding them.

The group's dead-letter topic is a topic like any other (created on demand in the source
topic's slot, see :mod:`.transport`). Listing reads its stream (``XRANGE``) and keeps the
entries whose ``tidings-dlq-topic``/``-group`` headers name the group; entries that
``tidings dlq replay`` acknowledged (its consumer group's position, less what it still has
pending) count as gone back. A redrive publishes each dead letter to the partition it came
from under its original message id, with ``tidings-redrive-group`` (the topic's other groups
acknowledge it without delivering, :func:`tidings.headers.redrive_skips`) and without the
producer-id dedup; once that publish returned, the dead letter is deleted (``XDEL``): a crash
in between redrives it again on the next call, never loses it. Discarding only deletes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis.exceptions as rx

from ... import headers as H
from ...errors import BadRequest, NotFound
from ...model import DeadLetter, Outgoing
from ...partitioning import partition_for
from ..rules import deadletter as dl
from .codec import Entry
from .errors import translated
from .naming import TopicKeys, offset_of
from .replies import entries, text, xinfo

if TYPE_CHECKING:
    from .transport import RedisTransport

MAX_REDRIVE = 10_000  # dead letters per call at most, as on the built-in broker
Waiting = tuple[str, DeadLetter]  # (entry id in the dead-letter stream, the dead letter)


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


async def _replayed(t: RedisTransport, stream: str) -> tuple[int, set[str]]:
    """(the offset up to which 'tidings dlq replay' read, the entries it still has pending)."""
    try:
        groups = await t.r.xinfo_groups(stream)
    except rx.ResponseError:
        return -1, set()
    for g in map(xinfo, groups):
        if text(g.get("name")) == H.REPLAY_GROUP:
            last = text(g.get("last-delivered-id") or b"0-0")
            pending = await t.r.xpending_range(stream, H.REPLAY_GROUP, "-", "+", MAX_REDRIVE)
            return offset_of(last), {text(p["message_id"]) for p in pending}
    return -1, set()


async def waiting(t: RedisTransport, topic: str, group: str, limit: int) -> list[Waiting]:
    _, _, gspec = await t._group(topic, group)  # NotFound for an unknown group
    try:
        dspec, dkeys = await t._lookup(dl.topic_of(gspec))
    except NotFound:
        return []  # nothing was dead-lettered yet: the topic is created on demand
    out: list[Waiting] = []
    with translated(f"dead letters of group {group!r} of topic {topic!r}"):
        for p in range(dspec.partitions):
            stream = dkeys.stream(p)
            floor, still = await _replayed(t, stream)
            start = "-"
            while len(out) < limit:
                chunk = entries(await t.r.xrange(stream, min=start, count=500))
                if not chunk:
                    break
                for raw_id, fields in chunk:
                    entry = raw_id.decode()
                    if offset_of(entry) <= floor and entry not in still:
                        continue
                    e = Entry(p, entry, fields, 0, 0, 0.0)
                    hd = e.headers
                    if hd.get(H.DLQ_TOPIC) != topic or hd.get(H.DLQ_GROUP) != group:
                        continue
                    letter = DeadLetter(
                        id=hd.get(H.DLQ_ID) or e.id,
                        msg_id=hd.get(H.DLQ_MSG_ID),
                        key=e.key,
                        headers={k: v for k, v in hd.items() if not k.startswith(H.DLQ_PREFIX)},
                        body=e.body,
                        reason=hd.get(H.DLQ_REASON, ""),
                        deliveries=_int(hd.get(H.DLQ_DELIVERIES)),
                        error=hd.get(H.DLQ_ERROR),
                        dead_lettered_at=e.timestamp,
                        partition=_int(hd.get(H.DLQ_PARTITION)),
                        offset=_int(hd.get(H.DLQ_OFFSET), -1),
                    )
                    out.append((f"{p} {entry}", letter))
                    if len(out) >= limit:
                        break
                start = "(" + chunk[-1][0].decode()
    return out


async def _select(
    t: RedisTransport, topic: str, group: str, ids: Sequence[str] | None, limit: int | None
) -> list[Waiting]:
    cap = MAX_REDRIVE if limit is None else limit
    if cap < 1:
        raise BadRequest("limit must be >= 1")
    if ids is not None and not ids:
        raise BadRequest("ids is empty: give the ids to act on, or none for every one")
    found = await waiting(t, topic, group, MAX_REDRIVE if ids else cap)
    if ids:
        wanted = set(ids)
        found = [(s, d) for s, d in found if d.id in wanted]
        missing = sorted(wanted - {d.id for _, d in found})
        if missing:
            raise NotFound(
                f"no dead letter with id {', '.join(missing)} waits for group {group!r} of "
                f"topic {topic!r} (already redriven or discarded, or not a dead letter of "
                f"this group): list them with dead_letters({topic!r}, {group!r})"
            )
        found = found[:cap]
    return found


async def _delete(t: RedisTransport, dkeys: TopicKeys, done: list[Waiting]) -> None:
    for place, _ in done:
        p, entry = place.split(" ")
        await t.r.xdel(dkeys.stream(int(p)), entry)


async def redrive(
    t: RedisTransport, topic: str, group: str, ids: Sequence[str] | None, limit: int | None
) -> list[str]:
    found = await _select(t, topic, group, ids, limit)
    if not found:
        return []
    spec, keys, gspec = await t._group(topic, group)
    _, dkeys = await t._lookup(dl.topic_of(gspec))
    outs, parts = [], []
    for _, d in found:
        outs.append(Outgoing(d.body, d.key, {**d.headers, H.REDRIVE_GROUP: group}, d.msg_id))
        p = d.partition
        if not 0 <= p < spec.partitions:
            p = partition_for(d.key, spec.partitions) if d.key is not None else 0
        parts.append(p)
    await t._publish(spec, keys, outs, parts, [d.id for _, d in found], dedup=False)
    with translated(f"redrive to group {group!r} of topic {topic!r}"):
        await _delete(t, dkeys, found)  # only now: the republish is stored
    return [d.id for _, d in found]


async def discard(
    t: RedisTransport, topic: str, group: str, ids: Sequence[str] | None, limit: int | None
) -> list[str]:
    found = await _select(t, topic, group, ids, limit)
    if found:
        _, _, gspec = await t._group(topic, group)
        _, dkeys = await t._lookup(dl.topic_of(gspec))
        with translated(f"discard dead letters of group {group!r} of topic {topic!r}"):
            await _delete(t, dkeys, found)
    return [d.id for _, d in found]
