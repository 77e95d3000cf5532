"""Where a group starts: consumer groups on each partition stream, created and destroyed.

A group is one consumer group of the same name on every partition stream (``XGROUP CREATE
... MKSTREAM``; one that exists already is left as it is, so a second member never moves the
position). ``start`` maps to the last-delivered id: ``earliest`` = ``0``, ``latest`` = ``$``,
an offset ``o`` = ``0-o`` (the entry of offset ``o`` is next), a time = the entry before the
first one stored at or after it, found by a binary search over the offsets on ``ts``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis.exceptions as rx

from ...model import GroupSpec, TopicSpec
from .naming import F_TS, TopicKeys, offset_of
from .replies import entries

if TYPE_CHECKING:
    from .transport import RedisTransport


async def _first_at_or_after(t: RedisTransport, stream: str, millis: int) -> int | None:
    """The offset of the first entry stored at or after ``millis`` (None: none is)."""
    r = t.r
    head = entries(await r.xrange(stream, count=1))
    tail = entries(await r.xrevrange(stream, count=1))
    if not head or not tail:
        return None
    lo, hi = offset_of(head[0][0].decode()), offset_of(tail[0][0].decode())
    if int(tail[0][1].get(F_TS.encode(), b"0")) < millis:
        return None
    while lo < hi:  # the first position whose next entry has ts >= millis
        mid = (lo + hi) // 2
        found = entries(await r.xrange(stream, min=f"0-{mid + 1}", count=1))
        entry, fields = found[0]
        at = offset_of(entry.decode())
        if int(fields.get(F_TS.encode(), b"0")) >= millis:
            hi = mid  # a position: the first entry at or after it is the answer
        else:
            lo = at + 1
    return lo


async def start_id(t: RedisTransport, stream: str, spec: GroupSpec) -> str:
    if spec.start == "latest":
        return "$"
    if spec.start == "offset":
        offset = int(spec.start_value or 0)
        return "0" if offset <= 0 else f"0-{offset}"
    if spec.start == "time":
        first = await _first_at_or_after(t, stream, int(float(spec.start_value or 0) * 1000))
        if first is None:
            return "$"
        return "0" if first <= 0 else f"0-{first}"
    return "0"


async def create_groups(
    t: RedisTransport, topic: TopicSpec, keys: TopicKeys, spec: GroupSpec
) -> None:
    for p in range(topic.partitions):
        stream = keys.stream(p)
        try:
            await t.r.xgroup_create(
                stream, spec.name, id=await start_id(t, stream, spec), mkstream=True
            )
        except rx.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


async def destroy_groups(t: RedisTransport, topic: TopicSpec, keys: TopicKeys, group: str) -> None:
    for p in range(topic.partitions):
        await t.r.xgroup_destroy(keys.stream(p), group)
        await t.r.delete(keys.hold(group, p), keys.skips(group, p), keys.errors(group, p))
