"""Request/reply support on a real nats-server: private temporary reply topics."""

from __future__ import annotations

import pytest

from tidings import headers as H
from tidings.errors import NotFound
from tidings.model import GroupSpec, Outgoing, TopicSpec


async def test_reply_topic_round_trip_and_cleanup(connect, name):
    requester, responder = await connect(), await connect()
    reply_to = await requester.create_reply_topic()
    replies = await requester.subscribe(GroupSpec(topic=reply_to, name="replies", auto_ack=True))
    requests = name("requests")
    await requester.create_topic(TopicSpec(name=requests))
    await requester.publish(
        requests,
        [Outgoing(b"ping", headers={H.REPLY_TO: reply_to, H.CORRELATION_ID: "c-1"})],
    )
    server = await responder.subscribe(GroupSpec(topic=requests, name="svc"))
    request = await server.next(timeout=5)
    await responder.publish(
        request.headers[H.REPLY_TO],
        [Outgoing(b"pong", headers={H.CORRELATION_ID: request.headers[H.CORRELATION_ID]})],
    )
    await request.ack()
    reply = await replies.next(timeout=5)
    assert reply.body == b"pong" and reply.headers[H.CORRELATION_ID] == "c-1"
    info = await responder.topic_info(reply_to)
    assert info.spec.temporary and info.spec.storage == "memory"

    await requester.close()
    with pytest.raises(NotFound):
        await responder.topic_info(reply_to)
    assert reply_to not in [t.name for t in await responder.list_topics()]


async def test_reply_topics_of_a_crashed_connection_are_swept(connect, monkeypatch):
    from tidings.transports.nats import replies

    crashed, survivor = await connect(), await connect()
    orphan = await crashed.create_reply_topic()
    await crashed.nc.close()  # the process died: no clean-up
    monkeypatch.setattr(replies, "STALE_AFTER", 0.0)
    await survivor.create_reply_topic()  # the first one sweeps
    assert orphan not in [t.name for t in await survivor.list_topics()]
