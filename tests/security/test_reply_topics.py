"""Reply topics from outside: nobody can squat a topic name through CREATE_REPLY_TOPIC, and
nobody can publish into a reply topic except as the reply to a request that named it
(issue #23, holes 1 and 5)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from tests.server.rawclient import RawClient

from tidings.errors import Forbidden, InvalidName
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.protocol import constants as c
from tidings.protocol import hello
from tidings.protocol import messages as m

from .conftest import PASSWORDS, connect


async def _raw(broker, user: str) -> RawClient:
    """A raw client logged in as ``user`` that sends heartbeats: the broker (``--heartbeat
    1.0``) closes a connection silent for 3 s, and the other clients' password checks take
    that long on a loaded machine."""
    raw = await RawClient.open(broker.url, handshake=False)
    raw.send(c.HELLO, 1, hello("squatter", user=user, token=PASSWORDS[user]))
    frame = await raw.next_frame(timeout=20)
    assert frame.type == c.WELCOME, frame

    async def beat() -> None:
        while not raw.writer.is_closing():
            raw.send(c.HEARTBEAT, c.NO_REPLY, m.Empty())
            await asyncio.sleep(0.3)

    _beats.add(asyncio.get_running_loop().create_task(beat()))
    return raw


_beats: set[asyncio.Task[None]] = set()  # keeps the heartbeat tasks referenced


async def test_a_chosen_name_is_never_squatted(secured):
    squatter = await _raw(secured, "mallory")  # no admin right anywhere
    ops = await connect(secured)
    alice = await connect(secured, "alice")
    try:
        frame, reply = await squatter.request(
            c.CREATE_REPLY_TOPIC, 2, m.CreateReplyTopic("payments.refunds")
        )
        assert frame.type == c.CREATE_REPLY_TOPIC | c.REPLY_BIT
        assert reply.name != "payments.refunds" and reply.name.startswith("_reply.")
        assert "payments.refunds" not in [t.name for t in await ops.list_topics()]
        spec = await ops.create_topic(TopicSpec(name="payments.refunds"), exist_ok=False)
        assert not spec.temporary  # the operator's own topic, not a squatter's
        await alice.publish("payments.refunds", [Outgoing(b"refund-42 card 4111")])
        _, refused = await squatter.request(
            c.SUBSCRIBE, 3, m.Subscribe(GroupSpec(topic="payments.refunds", name="steal"), 10)
        )
        assert refused.code == Forbidden.code
    finally:
        squatter.close()
        await ops.close()
        await alice.close()


async def test_the_reply_namespace_is_reserved_even_without_users(open_broker):
    t = await connect_open(open_broker)
    try:
        with pytest.raises(InvalidName, match="reserved for reply topics"):
            await t.create_topic(TopicSpec(name="_reply.mine"))
        raw = await RawClient.open(open_broker.url)
        _, reply = await raw.request(c.CREATE_REPLY_TOPIC, 2, m.CreateReplyTopic("orders"))
        assert reply.name.startswith("_reply.")
        await t.create_topic(TopicSpec(name="orders"), exist_ok=False)  # still free
        raw.close()
    finally:
        await t.close()


async def test_another_users_reply_topic_name_cannot_be_claimed(secured):
    alice = await connect(secured, "alice")
    mallory = await _raw(secured, "mallory")
    try:
        inbox = await alice.create_reply_topic()
        _, reply = await mallory.request(c.CREATE_REPLY_TOPIC, 2, m.CreateReplyTopic(inbox))
        assert reply.name != inbox  # a fresh name of mallory's own
    finally:
        await alice.close()
        mallory.close()


async def test_replies_cannot_be_forged_and_reply_topics_are_hidden(secured):
    alice = await connect(secured, "alice")  # the requester
    ops = await connect(secured)  # an admin: it may publish anywhere else
    responder = await connect(secured, "alice")
    try:
        inbox = await alice.create_reply_topic()
        listed = [t.name for t in await ops.list_topics()]
        assert inbox not in listed and not any(n.startswith("_reply.") for n in listed)
        with pytest.raises(Forbidden, match="reply topic"):
            await ops.topic_info(inbox)
        with pytest.raises(Forbidden, match="reply topic"):
            await ops.list_groups(inbox)
        with pytest.raises(Forbidden, match="only a connection that was delivered a request"):
            await ops.publish(inbox, [Outgoing(b"forged: refund approved")])
        rpc = f"rpc.{uuid.uuid4().hex[:8]}"
        await ops.create_topic(TopicSpec(name=rpc))
        requests = await responder.subscribe(GroupSpec(topic=rpc, name="svc"))
        replies = await alice.subscribe(GroupSpec(topic=inbox, name="inbox"))
        await alice.publish(rpc, [Outgoing(b"ask", headers={"reply-to": inbox})])
        request = await requests.next(timeout=10)
        with pytest.raises(Forbidden):  # the request went to the responder, not to ops
            await ops.publish(inbox, [Outgoing(b"forged")])
        await responder.publish(inbox, [Outgoing(b"the answer")])
        await request.ack()
        assert (await replies.next(timeout=10)).body == b"the answer"
        with pytest.raises(Forbidden, match="one reply per request"):
            await responder.publish(inbox, [Outgoing(b"and another")])
        assert await replies.next(timeout=0.5) is None
    finally:
        for t in (alice, ops, responder):
            await t.close()


async def connect_open(broker):
    from tidings.transports.tidings import NativeTransport

    t = NativeTransport(broker.url, timeout=10.0, reconnect=False)
    await t.connect()
    return t
