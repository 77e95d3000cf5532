"""Stats of topics and groups on redis://, from XINFO.

A partition's ``first_offset``/``next_offset`` come from ``XINFO STREAM`` (first entry,
last generated id); a group's ``in_flight`` is the consumer group's pending count (delivered,
not acknowledged: held, buffered, nacked with a delay or deferred), ``ready`` its ``lag``
(entries not delivered yet), ``members`` the live heartbeats, ``stuck_members`` the stalls
that live stuck members wrote of themselves (``Stall``), ``dead_lettered`` the messages
in its dead-letter topic, ``oldest_ready_age`` the age of the first undelivered entry.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import msgspec
import redis.exceptions as rx

from ...errors import NotFound
from ...model import GroupInfo, GroupSpec, PartitionInfo, StuckMember, TopicInfo, TopicSpec
from ..rules import deadletter as dl
from .errors import translated
from .naming import F_TS, TopicKeys, offset_of
from .replies import entries, text, xinfo

if TYPE_CHECKING:
    from .transport import RedisTransport


class Stall(msgspec.Struct):
    """What a stuck member writes of itself into the group's stuck hash."""

    expiries: int
    in_flight: int = 0
    partitions: list[int] = []


async def _stream(t: RedisTransport, stream: str) -> dict[str, Any]:
    try:
        return xinfo(await t.r.xinfo_stream(stream))
    except rx.ResponseError:  # no such key: nothing published yet
        return {}


async def topic_info(t: RedisTransport, spec: TopicSpec, keys: TopicKeys) -> TopicInfo:
    parts = []
    total = 0
    with translated(f"topic {spec.name!r}"):
        for p in range(spec.partitions):
            info = await _stream(t, keys.stream(p))
            length = int(info.get("length", 0))
            last = offset_of(text(info.get("last-generated-id", "0-0")))
            first = info.get("first-entry")
            first_offset = offset_of(text(first[0])) if first else last + 1
            parts.append(
                PartitionInfo(partition=p, first_offset=first_offset, next_offset=last + 1)
            )
            total += length
    return TopicInfo(name=spec.name, spec=spec, messages=total, partitions=parts)


async def _ready(t: RedisTransport, stream: str, group: dict[str, Any]) -> tuple[int, float | None]:
    """(entries not delivered to the group yet, the publish time of the first of them)."""
    last = text(group.get("last-delivered-id", "0-0"))
    lag = group.get("lag")
    after = "(" + last if last != "0-0" else "-"
    if lag is None:
        lag = len(entries(await t.r.xrange(stream, min=after, count=100_000)))
    if not lag:
        return 0, None
    first = entries(await t.r.xrange(stream, min=after, count=1))
    stamp = int(first[0][1].get(F_TS.encode(), b"0")) / 1000.0 if first else None
    return int(lag), stamp


async def group_info(
    t: RedisTransport, spec: TopicSpec, keys: TopicKeys, gspec: GroupSpec
) -> GroupInfo:
    ready = in_flight = 0
    oldest: float | None = None
    with translated(f"group {gspec.name!r} of topic {spec.name!r}"):
        for p in range(spec.partitions):
            stream = keys.stream(p)
            try:
                groups = await t.r.xinfo_groups(stream)
            except rx.ResponseError:
                continue
            info = next((g for g in groups if text(g.get("name")) == gspec.name), None)
            if info is None:
                continue
            in_flight += int(info.get("pending", 0))
            lag, stamp = await _ready(t, stream, info)
            ready += lag
            if stamp is not None:
                oldest = stamp if oldest is None else min(oldest, stamp)
        members = await t.scripts.members(
            keys=[keys.members(gspec.name)], args=[int(gspec.session_timeout * 1000)]
        )
        stalls = await t.scripts.stuck(
            keys=[keys.members(gspec.name), keys.stuck(gspec.name)],
            args=[int(gspec.session_timeout * 1000)],
        )
        dead = 0
        try:
            dspec, dkeys = await t._lookup(dl.topic_of(gspec))
            for p in range(dspec.partitions):
                dead += int(await t.r.xlen(dkeys.stream(p)))
        except NotFound:
            pass
    return GroupInfo(
        topic=spec.name,
        name=gspec.name,
        mode=gspec.mode,
        ready=ready,
        in_flight=in_flight,
        lag=ready + in_flight,
        dead_lettered=dead,
        oldest_ready_age=None if oldest is None else max(0.0, time.time() - oldest),
        members=int(members),
        spec=gspec,
        stuck_members=_stuck(stalls or []),
    )


def _stuck(flat: list[bytes]) -> list[StuckMember]:
    """The stalls stuck members wrote of themselves (:mod:`.subscription`)."""
    out = []
    for member, raw in zip(flat[::2], flat[1::2], strict=True):
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            stall = msgspec.json.decode(raw, type=Stall)
            out.append(
                StuckMember(
                    member_id=text(member),
                    expiries=stall.expiries,
                    in_flight=stall.in_flight,
                    partitions=stall.partitions,
                )
            )
    return sorted(out, key=lambda s: s.member_id)
