"""The ``/api/v1`` resources, mirroring the CLI's nouns: overview, topics, groups (stats,
members, reset, delete), dead letters (list, redrive, purge: ``deadletters``), messages
(browse a topic or a dead-letter topic by offset or time without consuming; publish a test
message; delete one by id), the purge of a topic, and connections (list, close); users
(read, reload) are in ``users``. Each handler checks the caller's rights (``access``) and
calls the broker's public engine and stats methods."""

from __future__ import annotations

import base64
import binascii
import datetime
import math
import time
from typing import TYPE_CHECKING

from ...errors import BadRequest, Closed, NotFound
from ...model import GroupInfo, Outgoing, Receipt, TopicInfo, TopicSpec
from ...names import refuse_reply_name
from . import access, deadletters
from .endpoints import Call, Endpoint, Query
from .schemas import (
    Alarms,
    Connection,
    Member,
    Message,
    MessageDeleted,
    MessagePage,
    Overview,
    PublishBody,
    Purged,
    ResetBody,
)

if TYPE_CHECKING:
    from ...broker.engine import Broker
    from ...model import Record
    from ..app import BrokerServer
    from ..connection import ClientConnection

PREFIX = "/api/v1"
MAX_PAGE = 1000


def _broker(call: Call) -> Broker:
    return call.server.runtime.broker


def overview_of(server: BrokerServer) -> Overview:
    """The broker-wide view: what ``GET /api/v1/overview`` answers and ``/api/v1/events``
    streams."""
    stats = server.stats()
    broker = server.runtime.broker
    infos = [
        broker.topic_info(t.name) for t in broker.list_topics() if access.may_see(None, t.name)
    ]
    groups = [g for t in infos for g in t.groups]
    alarms = server.alarms
    return Overview(
        version=stats.version,
        uptime_seconds=stats.uptime,
        connections=stats.connections,
        subscriptions=stats.subscriptions,
        topics=len(infos),
        groups=len(groups),
        messages=sum(t.messages for t in infos),
        storage_bytes=sum(t.bytes for t in infos),
        publish_rate=sum(t.publish_rate for t in infos),
        deliver_rate=sum(g.deliver_rate for g in groups),
        ack_rate=sum(g.ack_rate for g in groups),
        ready=sum(g.ready for g in groups),
        in_flight=sum(g.in_flight for g in groups),
        alarms=Alarms(
            memory=None if alarms.memory is None else alarms.memory.message,
            disk=None if alarms.disk is None else alarms.disk.message,
            resident_memory_bytes=alarms.rss,
            memory_high_watermark_bytes=alarms.memory_limit,
            disk_free_bytes=alarms.free,
            disk_free_limit_bytes=alarms.disk_free_limit,
        ),
    )


async def overview(call: Call) -> Overview:
    access.require_monitor(call.user, call.request)
    return overview_of(call.server)


async def list_topics(call: Call) -> list[TopicInfo]:
    broker = _broker(call)
    names = [t.name for t in broker.list_topics() if access.may_see(call.user, t.name)]
    return [broker.topic_info(name) for name in sorted(names)]


async def create_topic(call: Call) -> TopicSpec:
    spec: TopicSpec = call.body
    refuse_reply_name(spec.name)
    access.require(call.user, call.request, "admin", spec.name)
    if spec.temporary:
        raise BadRequest("temporary topics are reply topics, which the broker names and owns")
    spec.validate()
    limit = call.server.config.max_message_size
    if spec.max_message_size > limit:
        raise BadRequest(
            f"max_message_size {spec.max_message_size} is above this broker's limit of {limit} "
            "bytes: lower it or start the broker with a larger --max-message-size"
        )
    return _broker(call).create_topic(spec)


async def topic_info(call: Call) -> TopicInfo:
    topic = call.path["topic"]
    access.require_some(call.user, call.request, topic)
    return _broker(call).topic_info(topic)


async def delete_topic(call: Call) -> None:
    topic = call.path["topic"]
    access.require(call.user, call.request, "admin", topic)
    _broker(call).delete_topic(topic)
    call.server.members_gone(topic, None, f"topic {topic!r} was deleted (over HTTP)")


async def list_groups(call: Call) -> list[GroupInfo]:
    topic = call.path["topic"]
    access.require(call.user, call.request, "subscribe", topic)
    return _broker(call).topic_info(topic).groups


async def group_info(call: Call) -> GroupInfo:
    topic = call.path["topic"]
    access.require(call.user, call.request, "subscribe", topic)
    return _broker(call).group_info(topic, call.path["group"])


async def group_members(call: Call) -> list[Member]:
    topic, group = call.path["topic"], call.path["group"]
    access.require(call.user, call.request, "subscribe", topic)
    _broker(call).group_info(topic, group)  # NotFound for an unknown group
    return [
        Member(
            member_id=member.member_id,
            connection=conn.id,
            peer=conn.peer,
            client=conn.client,
            user=conn.user.name if conn.user is not None else None,
        )
        for conn in list(call.server.connections)
        for member in list(conn.members.values())
        if member.spec.topic == topic and member.spec.name == group
    ]


async def reset_group(call: Call) -> GroupInfo:
    topic, group = call.path["topic"], call.path["group"]
    access.require(call.user, call.request, "admin", topic)
    body: ResetBody = call.body
    broker = _broker(call)
    broker.reset_group(topic, group, body.start, body.start_value)
    return broker.group_info(topic, group)


async def delete_group(call: Call) -> None:
    topic, group = call.path["topic"], call.path["group"]
    access.require(call.user, call.request, "admin", topic)
    _broker(call).delete_group(topic, group)
    call.server.members_gone(topic, group, f"group {group!r} was deleted (over HTTP)")


def _message(topic: str, partition: int, r: Record) -> Message:
    try:
        text: str | None = r.body.decode()
    except UnicodeDecodeError:
        text = None
    return Message(
        topic=topic,
        partition=partition,
        offset=r.offset,
        id=r.id,
        timestamp=r.timestamp,
        key=r.key,
        headers=r.headers,
        body=text,
        body_base64=base64.b64encode(r.body).decode(),
        size=len(r.body),
        msg_id=r.msg_id,
        deliver_at=r.deliver_at,
        expires_at=r.expires_at,
    )


def _time(text: str) -> float:
    """``since``: seconds since the epoch, or an ISO 8601 time (UTC if it names no zone)."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise BadRequest(f"since must be a finite number of seconds, got {text!r}")
        return seconds
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"since must be seconds since the epoch or an ISO 8601 time such as "
            f"2026-12-07T12:00:00Z, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


async def browse(call: Call) -> MessagePage:
    topic = call.path["topic"]
    access.require(call.user, call.request, "subscribe", topic)
    info = _broker(call).topic_info(topic)
    p, limit = call.query["partition"], min(call.query["limit"], MAX_PAGE)
    if p >= len(info.partitions):
        raise NotFound(
            f"topic {topic!r} has {len(info.partitions)} partitions (0 to "
            f"{len(info.partitions) - 1}); partition {p} does not exist"
        )
    part = info.partitions[p]
    start, since = call.query["offset"], call.query["since"]
    if since is not None:
        if start is not None:
            raise BadRequest("give offset or since, not both")
        start = call.server.store.offset_at(topic, p, _time(since))
    start = part.first_offset if start is None else max(start, part.first_offset)
    records = []
    if start < part.next_offset and limit:
        records = call.server.store.read(topic, p, start, min(limit, part.next_offset - start))
    deleted = _broker(call).is_deleted
    messages = [_message(topic, p, r) for r in records if not deleted(topic, p, r.offset)]
    return MessagePage(
        messages=messages,
        next_offset=records[-1].offset + 1 if records else max(start, part.first_offset),
        first_offset=part.first_offset,
        end_offset=part.next_offset,
    )


async def publish(call: Call) -> Receipt:
    topic = call.path["topic"]
    access.require(call.user, call.request, "publish", topic)
    body: PublishBody = call.body
    if (body.body is None) == (body.body_base64 is None):
        raise BadRequest("give the message as body (text) or body_base64, exactly one of them")
    if body.body is not None:
        data = body.body.encode()
    else:
        try:
            data = base64.b64decode(body.body_base64 or "", validate=True)
        except binascii.Error as exc:
            raise BadRequest(f"body_base64 is not valid base64: {exc}") from None
    call.server.alarms.refuse_publish()
    message = Outgoing(data, body.key, dict(body.headers), body.msg_id, body.ttl, body.delay)
    origin = access.who(call.request)
    receipts = await call.server.runtime.publish(topic, [message], origin)
    sizes = call.server.published_bytes
    sizes[topic] = sizes.get(topic, 0) + len(data)
    return receipts[0]


async def delete_message(call: Call) -> MessageDeleted:
    """Settle one message for every group of its topic (see tidings.broker.deletion)."""
    topic, message_id = call.path["topic"], call.path["id"]
    access.require(call.user, call.request, "admin", topic)
    p, offset, groups = await call.server.runtime.delete_message(topic, message_id)
    return MessageDeleted(id=message_id, partition=p, offset=offset, groups=groups)


async def purge_topic(call: Call) -> Purged:
    topic = call.path["topic"]
    access.require(call.user, call.request, "admin", topic)
    _broker(call).topic_info(topic)  # NotFound first
    count = await call.server.runtime.purge_topic(topic)
    groups = sorted(g.name for g in _broker(call).topic_info(topic).groups)
    return Purged(topic=topic, count=count, groups=groups)


def _connection(conn: ClientConnection, now: float) -> Connection:
    return Connection(
        id=conn.id,
        peer=conn.peer,
        client=conn.client,
        user=conn.user.name if conn.user is not None else None,
        age_seconds=now - conn.opened,
        subscriptions=len(conn.members),
        write_buffer_bytes=conn.buffered(),
        paused=conn.paused,
        frames_in=conn.frames_in,
        frames_out=conn.frames_out,
    )


async def list_connections(call: Call) -> list[Connection]:
    access.require_operator(call.user, call.request)
    now = time.monotonic()
    return [_connection(c, now) for c in sorted(call.server.connections, key=lambda c: c.id)]


async def close_connection(call: Call) -> None:
    access.require_operator(call.user, call.request)
    wanted = call.path["connection"]
    for conn in list(call.server.connections):
        if conn.id == wanted:
            conn.fail(Closed("an operator closed this connection (over HTTP); reconnect"))
            conn.abort()
            return
    raise NotFound(f"no open connection {wanted!r}: list them with GET {PREFIX}/connections")


_T = PREFIX + "/topics/{topic}"
_G = _T + "/groups/{group}"

ENDPOINTS = [
    Endpoint("GET", PREFIX + "/overview", "Broker overview", "broker", overview, Overview),
    Endpoint("GET", PREFIX + "/topics", "List topics with stats", "topics", list_topics,
             list[TopicInfo]),
    Endpoint("POST", PREFIX + "/topics", "Create a topic", "topics", create_topic, TopicSpec,
             body=TopicSpec, status=201),
    Endpoint("GET", _T, "A topic's stats", "topics", topic_info, TopicInfo),
    Endpoint("DELETE", _T, "Delete a topic and its messages", "topics", delete_topic,
             status=204),
    Endpoint("GET", _T + "/groups", "A topic's groups", "groups", list_groups, list[GroupInfo]),
    Endpoint("GET", _G, "A group's stats", "groups", group_info, GroupInfo),
    Endpoint("DELETE", _G, "Delete a group", "groups", delete_group, status=204),
    Endpoint("GET", _G + "/members", "A group's members", "groups", group_members,
             list[Member]),
    Endpoint("POST", _G + "/reset", "Move a group to a new start position", "groups",
             reset_group, GroupInfo, body=ResetBody),
    Endpoint("GET", _T + "/messages", "Browse stored messages without consuming them "
             "(any topic, dead-letter topics too)", "messages", browse, MessagePage,
             query=(Query("partition", int, 0, "partition to read", 0),
                    Query("offset", int, None, "first offset (default: the oldest)", 0),
                    Query("since", str, None, "instead of offset: the first message published "
                          "at or after this time (seconds since the epoch, or ISO 8601)"),
                    Query("limit", int, 50, f"messages at most (up to {MAX_PAGE})", 0))),
    Endpoint("POST", _T + "/messages", "Publish a (test) message", "messages", publish,
             Receipt, body=PublishBody, status=201),
    Endpoint("DELETE", _T + "/messages/{id}", "Delete one message by id: every group of the "
             "topic settles it and none delivers it again (the log keeps the record until "
             "retention)", "messages", delete_message, MessageDeleted),
    Endpoint("POST", _T + "/purge", "Purge a topic: drop its stored messages and move every "
             "group past them (leased ones too)", "topics", purge_topic, Purged),
    *deadletters.endpoints(_G),
    Endpoint("GET", PREFIX + "/connections", "Client connections", "connections",
             list_connections, list[Connection]),
    Endpoint("DELETE", PREFIX + "/connections/{connection}", "Close a client connection",
             "connections", close_connection, status=204),
]  # fmt: skip
