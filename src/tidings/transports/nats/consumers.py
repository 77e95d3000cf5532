"""Groups as durable JetStream consumers: the settings mapping, creation, listing and stats.

A shared group is one durable pull consumer over the whole topic; an ordered group is one per
partition, filtered to the partition's subject, with ``max_ack_pending`` = the group's
in-flight window (JetStream then never hands out a partition's next message before the window
has room, which is what keeps a partition in order, even while members change). Every consumer
carries its GroupSpec as JSON in its description. JetStream's own ``max_deliver`` stays
unlimited: tidings counts deliveries itself and dead-letters (see :mod:`.subscription`).
"""

from __future__ import annotations

import asyncio
import datetime
import time

import msgspec
import nats.js.errors
from nats.js import JetStreamContext, api

from ...errors import BadRequest
from ...headers import dead_letter_topic
from ...model import GroupInfo, GroupSpec, TopicSpec
from .errors import translated
from .naming import HOLD_CONSUMER, consumer_name, stream_name, subject, subjects_of
from .state import StateStore


class _Described(msgspec.Struct):
    tidings: int
    group: GroupSpec | None = None
    partition: int | None = None


def partitions_of(spec: GroupSpec, topic: TopicSpec) -> list[int | None]:
    """The partition of each consumer of the group (None: one consumer for all)."""
    return list(range(topic.partitions)) if spec.mode == "ordered" else [None]


def _start_value(spec: GroupSpec) -> float:
    if spec.start_value is None:  # GroupSpec.validate() refuses this too
        raise BadRequest(f"start={spec.start!r} needs start_value")
    return spec.start_value


def consumer_config(spec: GroupSpec, topic: TopicSpec, partition: int | None) -> api.ConsumerConfig:
    policy, start_seq, start_time = api.DeliverPolicy.ALL, None, None
    if spec.start == "latest":
        policy = api.DeliverPolicy.NEW
    elif spec.start == "offset":
        policy, start_seq = api.DeliverPolicy.BY_START_SEQUENCE, max(1, int(_start_value(spec)) + 1)
    elif spec.start == "time":
        policy = api.DeliverPolicy.BY_START_TIME
        start_time = datetime.datetime.fromtimestamp(_start_value(spec), datetime.UTC)
    return api.ConsumerConfig(
        durable_name=consumer_name(spec.name, partition),
        description=msgspec.json.encode(
            _Described(tidings=1, group=spec, partition=partition)
        ).decode(),
        deliver_policy=policy,
        opt_start_seq=start_seq,
        opt_start_time=start_time,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=spec.lease,
        max_deliver=-1,
        max_ack_pending=-1 if partition is None else spec.in_flight_per_partition,
        filter_subject=None if partition is None else subject(topic.name, partition),
    )


def spec_of(info: api.ConsumerInfo) -> GroupSpec | None:
    desc = info.config.description
    if not desc:
        return None
    try:
        return msgspec.json.decode(desc, type=_Described).group
    except msgspec.DecodeError:
        return None


async def _create(js: JetStreamContext, topic: TopicSpec, spec: GroupSpec) -> None:
    stream = stream_name(topic.name)
    for partition in partitions_of(spec, topic):
        try:
            await js.add_consumer(stream, consumer_config(spec, topic, partition))
        except nats.js.errors.APIError as exc:
            if exc.err_code not in (10013, 10148, 10058):  # made meanwhile by another member
                raise


async def ensure_group(js: JetStreamContext, topic: TopicSpec, spec: GroupSpec) -> GroupSpec:
    """Create the group's consumers if missing; the stored spec of an existing group wins."""
    stream = stream_name(topic.name)
    with translated(f"group {spec.name!r} of topic {topic.name!r}"):
        found = await _stored(js, stream, spec.name)
        stored = spec if found is None else found[0]
        if stored.mode != spec.mode:
            raise BadRequest(
                f"group {spec.name!r} of topic {topic.name!r} exists with mode={stored.mode!r}; "
                "delete it first or use another group name"
            )
        await _create(js, topic, stored)
        if topic.retention == "work-queue":
            try:
                await js.delete_consumer(stream, HOLD_CONSUMER)
            except nats.js.errors.NotFoundError:
                pass
    return stored


async def _stored(
    js: JetStreamContext, stream: str, group: str
) -> tuple[GroupSpec, api.ConsumerInfo] | None:
    """The stored spec of ``group`` and its first consumer's info (None if there is none)."""
    for first in (consumer_name(group), consumer_name(group, 0)):
        try:
            info = await js.consumer_info(stream, first)
        except nats.js.errors.NotFoundError:
            continue
        spec = spec_of(info)
        if spec is not None:
            return spec, info
    return None


async def hold_work_queue(js: JetStreamContext, topic: TopicSpec) -> None:
    """Keep a new work-queue topic's messages until its first group exists (interest
    retention would otherwise drop messages published while no group is there)."""
    config = api.ConsumerConfig(
        durable_name=HOLD_CONSUMER,
        description='{"tidings":1,"hold":true}',
        ack_policy=api.AckPolicy.EXPLICIT,
    )
    with translated(f"topic {topic.name!r}"):
        await js.add_consumer(stream_name(topic.name), config)


async def list_groups(
    js: JetStreamContext, topic: TopicSpec
) -> dict[str, tuple[GroupSpec, list[api.ConsumerInfo]]]:
    out: dict[str, tuple[GroupSpec, list[api.ConsumerInfo]]] = {}
    offset = 0
    with translated(f"list groups of topic {topic.name!r}"):
        while True:
            infos = await js.consumers_info(stream_name(topic.name), offset)
            if not infos:
                break
            offset += len(infos)
            for info in infos:
                spec = spec_of(info)
                if spec is not None:
                    out.setdefault(spec.name, (spec, []))[1].append(info)
    return out


async def find_group(
    js: JetStreamContext, topic: TopicSpec, group: str
) -> tuple[GroupSpec, list[api.ConsumerInfo]] | None:
    stream = stream_name(topic.name)
    with translated(f"group {group!r} of topic {topic.name!r}"):
        found = await _stored(js, stream, group)
        if found is None:
            return None
        spec, info = found
        infos = [info]
        if spec.mode == "ordered":
            names = [consumer_name(group, p) for p in range(1, topic.partitions)]
            infos.extend(await asyncio.gather(*(js.consumer_info(stream, n) for n in names)))
        return spec, infos


async def delete_consumers(js: JetStreamContext, topic: TopicSpec, spec: GroupSpec) -> None:
    stream = stream_name(topic.name)
    with translated(f"delete group {spec.name!r} of topic {topic.name!r}"):
        for partition in partitions_of(spec, topic):
            try:
                await js.delete_consumer(stream, consumer_name(spec.name, partition))
            except nats.js.errors.NotFoundError:
                pass


async def reset(js: JetStreamContext, topic: TopicSpec, spec: GroupSpec) -> None:
    """Move the group to ``spec``'s start: JetStream cannot move a consumer, so it is deleted
    and created again (connected members carry on with the new one)."""
    await delete_consumers(js, topic, spec)
    with translated(f"reset group {spec.name!r} of topic {topic.name!r}"):
        await _create(js, topic, spec)


async def group_info(
    js: JetStreamContext,
    state: StateStore,
    topic: TopicSpec,
    spec: GroupSpec,
    infos: list[api.ConsumerInfo],
) -> GroupInfo:
    stream = stream_name(topic.name)
    ready = sum(i.num_pending or 0 for i in infos)
    in_flight = sum(i.num_ack_pending or 0 for i in infos)
    with translated(f"group {spec.name!r} of topic {topic.name!r}"):
        oldest = None
        if ready:
            oldest = await _oldest_ready(js, stream, topic, infos)
        entries = await state.members(spec.topic, spec.name)
        now = time.time()
        members = sum(1 for e in entries if not e.left and now - e.time < spec.session_timeout)
        dead = 0
        try:
            dlq = spec.dead_letter_topic or dead_letter_topic(spec.topic, spec.name)
            dead = (await js.stream_info(stream_name(dlq))).state.messages
        except nats.js.errors.NotFoundError:
            pass
    return GroupInfo(
        topic=spec.topic,
        name=spec.name,
        mode=spec.mode,
        ready=ready,
        in_flight=in_flight,
        lag=ready + in_flight,
        dead_lettered=dead,
        oldest_ready_age=oldest,
        members=members,
        spec=spec,
    )


async def _oldest_ready(
    js: JetStreamContext, stream: str, topic: TopicSpec, infos: list[api.ConsumerInfo]
) -> float | None:
    times = []
    for info in infos:
        if not info.num_pending:
            continue
        subj = info.config.filter_subject or subjects_of(topic.name)
        start = (info.delivered.stream_seq if info.delivered else 0) + 1
        try:
            raw = await js.get_msg(stream, seq=start, subject=subj, next=True)
        except nats.js.errors.NotFoundError:
            continue
        if raw.time is not None:
            times.append(raw.time.timestamp())
    return max(0.0, time.time() - min(times)) if times else None
