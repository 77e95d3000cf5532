"""Topics as JetStream streams: the settings mapping, the catalogue and topic stats.

One topic is one stream (see :mod:`.naming`). The TopicSpec is kept as JSON in the stream's
description, so every connection reads back exactly what was declared.
"""

from __future__ import annotations

import asyncio

import msgspec
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from ...model import PartitionInfo, TopicInfo, TopicSpec
from .codec import stored_seq
from .errors import translated
from .naming import STREAM_PREFIX, stream_name, subject, subjects_of


class _Described(msgspec.Struct):
    tidings: int
    topic: TopicSpec


def stream_config(spec: TopicSpec) -> api.StreamConfig:
    """The JetStream stream that holds ``spec``'s topic."""
    window = spec.dedup_window
    if spec.max_age is not None:
        window = min(window, spec.max_age)  # JetStream refuses a window beyond max_age
    return api.StreamConfig(
        name=stream_name(spec.name),
        description=msgspec.json.encode(_Described(tidings=1, topic=spec)).decode(),
        subjects=[subjects_of(spec.name)],
        # 'work-queue' = dropped once every group acked it = JetStream interest retention (true
        # WorkQueue retention allows a single consumer per subject, i.e. a single group).
        retention=(
            api.RetentionPolicy.INTEREST
            if spec.retention == "work-queue"
            else api.RetentionPolicy.LIMITS
        ),
        max_msgs=spec.max_messages or -1,
        max_bytes=spec.max_bytes or -1,
        max_age=spec.max_age or 0,
        discard=api.DiscardPolicy.NEW if spec.overflow == "reject" else api.DiscardPolicy.OLD,
        duplicate_window=window if window > 0 else 0,
        max_msg_size=spec.max_message_size,
        storage=api.StorageType.MEMORY if spec.storage == "memory" else api.StorageType.FILE,
        num_replicas=spec.replicas,
    )


def spec_of(info: api.StreamInfo) -> TopicSpec | None:
    """The TopicSpec a tidings stream describes (None for streams tidings did not create)."""
    name = info.config.name or ""
    desc = info.config.description
    if not name.startswith(STREAM_PREFIX) or not desc:
        return None
    try:
        return msgspec.json.decode(desc, type=_Described).topic
    except msgspec.DecodeError:
        return None


async def list_specs(js: JetStreamContext) -> list[TopicSpec]:
    out: list[TopicSpec] = []
    offset = 0
    with translated("list topics"):
        while True:
            infos = await js.streams_info(offset)
            if not infos:
                break
            offset += len(infos)
            out.extend(s for s in map(spec_of, infos) if s is not None)
    return sorted(out, key=lambda s: s.name)


async def partition_infos(js: JetStreamContext, spec: TopicSpec) -> list[PartitionInfo]:
    """First and next offset of every partition (two direct reads per non-empty partition)."""
    stream = stream_name(spec.name)
    with translated(f"topic {spec.name!r}"):
        info = await js.stream_info(stream, subjects_filter=subjects_of(spec.name))
    counts = info.state.subjects or {}
    next_free = info.state.last_seq  # offset after the stream's last message

    async def one(p: int) -> PartitionInfo:
        subj = subject(spec.name, p)
        if not counts.get(subj):
            return PartitionInfo(partition=p, first_offset=next_free, next_offset=next_free)
        try:
            last = await js.get_msg(stream, subject=subj)
            first = await js.get_msg(stream, seq=info.state.first_seq, subject=subj, next=True)
        except NotFoundError:
            return PartitionInfo(partition=p, first_offset=next_free, next_offset=next_free)
        return PartitionInfo(
            partition=p, first_offset=stored_seq(first) - 1, next_offset=stored_seq(last)
        )

    limit = asyncio.Semaphore(32)

    async def bounded(p: int) -> PartitionInfo:
        async with limit:
            return await one(p)

    with translated(f"topic {spec.name!r}"):
        return list(await asyncio.gather(*(bounded(p) for p in range(spec.partitions))))


def topic_info(spec: TopicSpec, info: api.StreamInfo) -> TopicInfo:
    return TopicInfo(
        name=spec.name, spec=spec, messages=info.state.messages, bytes=info.state.bytes
    )
