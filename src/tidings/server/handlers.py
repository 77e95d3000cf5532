"""What the broker does for each request frame (all but PUBLISH, see ``publishing``).

Each handler takes the connection and the decoded payload and returns the reply payload, or
raises a TidingsError that the connection turns into an ERROR frame. They only make
synchronous engine calls, so they answer within the same event-loop iteration; the few that
must wait for a commit (REDRIVE, see ``deadletters``) return a coroutine of the reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..errors import (
    BadRequest,
    NotFound,
    ProtocolError,
    TidingsError,
    Unauthorized,
)
from ..names import is_reply_topic, refuse_reply_name
from ..protocol import constants as c
from ..protocol import decode_body
from ..protocol import messages as m
from ..protocol.framing import Frame
from ..protocol.handshake import negotiate
from ..trace import Trace
from . import deadletters, replies, rights
from .members import ServerMember
from .tracing import lookup

if TYPE_CHECKING:
    from .connection import ClientConnection

log = logging.getLogger("tidings.server")


def handshake(conn: ClientConnection, frames: list[Frame]) -> list[Frame]:
    """Handle the HELLO that must open the connection; return the frames after it.

    When the broker has users and the credentials need the slow (password) check, that runs
    in a worker thread while the frames after HELLO wait; the connection reads no more
    meanwhile, and WELCOME (or ERROR 410 and close) follows when the check is done."""
    if not frames:
        return frames
    first = frames[0]
    try:
        if first.type != c.HELLO:
            raise BadRequest(
                f"expected HELLO as the first frame, got {c.frame_name(first.type)}: "
                "is this a tidings client?"
            )
        hello = decode_body(first, m.Hello)
        version = negotiate(hello)
    except TidingsError as exc:
        log.warning("handshake with %s failed: %s", conn.peer, exc)
        conn.error(first.request_id, exc)
        conn.close()
        return []
    conn.client = hello.client
    auth = conn.server.auth
    if auth.enabled:
        user = auth.cached(hello.user, hello.token)
        if user is None:
            conn.authenticating = frames[1:]
            conn.pause_reading()
            task = asyncio.get_running_loop().create_task(
                _authenticate(conn, hello, first.request_id, version)
            )
            conn.tasks.add(task)
            task.add_done_callback(conn.tasks.discard)
            return []
        conn.user = user
    _welcome(conn, first.request_id, version)
    return frames[1:]


async def _authenticate(conn: ClientConnection, hello: m.Hello, rid: int, version: int) -> None:
    """Check the credentials off the event loop, against the users in effect when the check
    completes: a reload (SIGHUP) during the check makes it run again on the new users, so a
    user removed meanwhile never gets WELCOME (and a changed one gets its new rights)."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            auth = conn.server.auth
            user = await loop.run_in_executor(None, auth.verify, hello.user, hello.token)
            if conn.server.auth is auth:
                break
            log.info(
                "users reloaded while %s authenticated: checking again against the new users",
                conn.id,
            )
    except Unauthorized as exc:
        log.warning(
            "authentication of user %r from %s failed: %s", hello.user or "(token)", conn.peer, exc
        )
        conn.error(rid, exc)
        conn.close()
        return
    if conn.closed:
        return
    conn.user = user
    _welcome(conn, rid, version)
    frames, conn.authenticating = conn.authenticating or [], None
    conn.resume_reading()
    conn.dispatch(frames)


def _welcome(conn: ClientConnection, rid: int, version: int) -> None:
    conn.version = version
    config = conn.server.config
    conn.decoder.max_frame_size = config.max_frame_size
    conn.write(
        c.WELCOME,
        rid,
        m.Welcome(
            version=conn.version,
            server=conn.server.server_version,
            connection_id=conn.id,
            heartbeat=config.heartbeat,
            max_frame_size=config.max_frame_size,
            max_message_size=config.max_message_size,
            capabilities=sorted(conn.server.capabilities),
            max_batch=config.max_batch,
            user=conn.user.name if conn.user is not None else None,
        ),
    )
    log.debug(
        "connection %s from %s: client %r, user %r, protocol %d",
        conn.id,
        conn.peer,
        conn.client,
        conn.user.name if conn.user is not None else None,
        conn.version,
    )


def ping(conn: ClientConnection, body: m.Ping) -> m.Pong:
    return m.Pong(body.nonce, time.time())


def stats(conn: ClientConnection, body: m.Empty) -> m.ServerStats:
    return conn.server.stats()


def create_topic(conn: ClientConnection, body: m.CreateTopic) -> m.TopicReply:
    spec = body.spec
    refuse_reply_name(spec.name)
    if spec.temporary:
        raise BadRequest(
            "temporary topics are reply topics, which the broker names: use "
            "create_reply_topic (or create an ordinary topic without temporary)"
        )
    rights.require(conn, "admin", spec.name)
    limit = conn.server.config.max_message_size
    if spec.max_message_size > limit:
        raise BadRequest(
            f"max_message_size {spec.max_message_size} is above this broker's limit of {limit} "
            "bytes: lower it or start the broker with a larger --max-message-size"
        )
    return m.TopicReply(conn.broker.create_topic(spec, exist_ok=body.exist_ok, given=body.given))


def delete_topic(conn: ClientConnection, body: m.TopicName) -> m.Empty:
    replies.refuse_foreign(conn, body.name, "delete")
    if replies.owner_of(conn, body.name) is not conn:
        rights.require(conn, "admin", body.name)
    conn.broker.delete_topic(body.name)
    conn.server.members_gone(body.name, None, f"topic {body.name!r} was deleted")
    return m.Empty()


def list_topics(conn: ClientConnection, body: m.Empty) -> m.TopicList:
    topics = [t for t in conn.broker.list_topics() if replies.visible(conn, t.name)]
    user = conn.user
    if user is not None:
        topics = [t for t in topics if user.may_see(t.name) or is_reply_topic(t.name)]
    return m.TopicList(topics)


def topic_info(conn: ClientConnection, body: m.TopicName) -> Any:
    rights.require_some(conn, body.name)
    return conn.broker.topic_info(body.name)


def create_reply_topic(conn: ClientConnection, body: m.CreateReplyTopic) -> m.TopicName:
    return m.TopicName(replies.create(conn, body.name))


def subscribe(conn: ClientConnection, body: m.Subscribe) -> m.Subscribed:
    spec = body.spec.validate()
    rights.require_subscribe(conn, spec.topic)
    rights.require_group_writes(conn, spec)
    conn.next_sub += 1
    member = ServerMember(conn, conn.next_sub, spec)
    member_id = conn.broker.join(
        spec,
        prefetch=body.prefetch,
        deliver=member.deliver,
        closed=member.closed,
        prefetch_bytes=body.prefetch_bytes,
    )
    member.member_id = member_id
    conn.server.tracer.joined(member_id, conn.origin)
    conn.members[member.sub_id] = member
    stored = conn.broker.member_group(member_id)
    return m.Subscribed(member.sub_id, member_id, stored)


def after_subscribe(conn: ClientConnection, reply: m.Subscribed) -> None:
    member = conn.members.get(reply.sub)
    if member is not None:
        member.joined(reply.member)


def _member(conn: ClientConnection, sub: int) -> ServerMember:
    member = conn.members.get(sub)
    if member is None:
        raise NotFound(f"unknown subscription {sub} on this connection: it was closed")
    return member


def unsubscribe(conn: ClientConnection, body: m.Unsubscribe) -> m.Empty:
    member = _member(conn, body.sub)
    pos = body.unhanded
    if pos is not None and len(pos) % 2:
        raise BadRequest("UNSUBSCRIBE unhanded positions must be partition, offset pairs")
    unhanded = None if pos is None else list(zip(pos[::2], pos[1::2], strict=True))
    del conn.members[body.sub]
    conn.broker.leave(member.member_id, unhanded)
    return m.Empty()


def ack(conn: ClientConnection, body: m.Ack) -> m.SettleReply:
    member = _member(conn, body.sub)
    pos = body.positions
    if len(pos) % 2:
        raise BadRequest("ACK positions must be partition, offset pairs")
    refs = list(zip(pos[::2], pos[1::2], strict=True))
    # ack_many's results are typed Exception but hold only its LeaseLost and NotFound
    results = cast("list[TidingsError | None]", conn.broker.ack_many(member.member_id, refs))
    return m.SettleReply([(i, e.code, e.message) for i, e in enumerate(results) if e is not None])


def _settle_each(items: Sequence[Sequence[Any]], call: Callable[..., None]) -> m.SettleReply:
    errors: list[tuple[int, int, str]] = []
    for i, item in enumerate(items):
        try:
            call(*item)
        except TidingsError as exc:
            errors.append((i, exc.code, exc.message))
    return m.SettleReply(errors)


def nack(conn: ClientConnection, body: m.Nack) -> m.SettleReply:
    member_id = _member(conn, body.sub).member_id
    broker = conn.broker
    return _settle_each(body.items, lambda p, o, d, e: broker.nack(member_id, p, o, d, e))


def extend(conn: ClientConnection, body: m.Extend) -> m.SettleReply:
    member_id = _member(conn, body.sub).member_id
    broker = conn.broker
    return _settle_each(body.items, lambda p, o, s: broker.extend(member_id, p, o, s))


def reject(conn: ClientConnection, body: m.Reject) -> m.SettleReply:
    member_id = _member(conn, body.sub).member_id
    broker = conn.broker
    return _settle_each(body.items, lambda p, o, r: broker.reject(member_id, p, o, r))


def credit(conn: ClientConnection, body: m.Credit) -> None:
    member = conn.members.get(body.sub)
    if member is not None:  # credit for a member that just left is moot
        member.credit(body.n)


def group_info(conn: ClientConnection, body: m.GroupRef) -> Any:
    rights.require_subscribe(conn, body.topic)
    return conn.broker.group_info(body.topic, body.group)


def delete_group(conn: ClientConnection, body: m.GroupRef) -> m.Empty:
    rights.require(conn, "admin", body.topic)
    conn.broker.delete_group(body.topic, body.group)
    conn.server.members_gone(body.topic, body.group, f"group {body.group!r} was deleted")
    return m.Empty()


def reset_group(conn: ClientConnection, body: m.ResetGroup) -> m.Empty:
    rights.require(conn, "admin", body.topic)
    conn.broker.reset_group(body.topic, body.group, body.start, body.start_value)
    return m.Empty()


def list_groups(conn: ClientConnection, body: m.TopicName) -> m.GroupList:
    rights.require_subscribe(conn, body.name)
    return m.GroupList(conn.broker.list_groups(body.name))


def trace(conn: ClientConnection, body: m.TraceQuery) -> Trace:
    if body.kind == "topic" and body.value:
        rights.require_subscribe(conn, body.value)
    tracer = conn.server.tracer
    return lookup(tracer, body.kind, body.value, after=body.after, limit=body.limit, user=conn.user)


def hello_again(conn: ClientConnection, body: m.Hello) -> None:
    raise ProtocolError("HELLO was already exchanged on this connection")


HANDLERS: dict[int, Callable[[ClientConnection, Any], Any]] = {
    c.HELLO: hello_again,
    c.PING: ping,
    c.STATS: stats,
    c.CREATE_TOPIC: create_topic,
    c.DELETE_TOPIC: delete_topic,
    c.LIST_TOPICS: list_topics,
    c.TOPIC_INFO: topic_info,
    c.CREATE_REPLY_TOPIC: create_reply_topic,
    c.SUBSCRIBE: subscribe,
    c.UNSUBSCRIBE: unsubscribe,
    c.ACK: ack,
    c.NACK: nack,
    c.EXTEND: extend,
    c.REJECT: reject,
    c.CREDIT: credit,
    c.GROUP_INFO: group_info,
    c.DELETE_GROUP: delete_group,
    c.RESET_GROUP: reset_group,
    c.LIST_GROUPS: list_groups,
    c.TRACE: trace,
    c.DEAD_LETTERS: deadletters.dead_letters,
    c.REDRIVE: deadletters.redrive,
    c.DISCARD_DEAD_LETTERS: deadletters.discard,
}
