"""Bad input: one broken client loses its own connection; everyone else carries on."""

from __future__ import annotations

import struct

import pytest

from tidings.errors import MessageTooLarge, ProtocolError
from tidings.model import Outgoing, TopicSpec
from tidings.protocol import constants, decode_body, raw_frame
from tidings.protocol import messages as m

from .rawclient import RawClient


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        struct.pack(">IBI", 1 << 30, constants.PUBLISH, 1),
        raw_frame(0x55, 1, b""),
        raw_frame(constants.DELIVER, 0, b"\x90"),
    ],
    ids=["http", "huge-length", "unknown-type", "wrong-direction"],
)
async def test_an_undecodable_stream_closes_only_that_connection(broker, transport, name, garbage):
    await transport.create_topic(TopicSpec(name=name))
    bad = await RawClient.open(broker.url)
    bad.send_raw(garbage)
    frame = await bad.next_frame()
    assert frame.type == constants.ERROR and decode_body(frame).code == ProtocolError.code
    assert await bad.closed_by_peer()
    assert await transport.ping() < 1
    [receipt] = await transport.publish(name, [Outgoing(b"still fine")])
    assert receipt.offset == 0


async def test_a_malformed_payload_is_answered_and_the_connection_survives(broker):
    client = await RawClient.open(broker.url)
    try:
        client.send_raw(raw_frame(constants.CREATE_TOPIC, 5, b"\x93\xc1\xc1\xc1"))
        client.send_raw(raw_frame(constants.PUBLISH, 6, b"\x92\x01\x02"))
        client.send_raw(raw_frame(constants.ACK, 7, b"\x92\x01\x91\x01"))  # odd positions
        errors = {}
        for _ in range(3):
            frame = await client.next_frame()
            assert frame.type == constants.ERROR
            errors[frame.request_id] = decode_body(frame)
        assert "malformed CREATE_TOPIC payload" in errors[5].message
        assert "malformed PUBLISH payload" in errors[6].message
        assert errors[7].code in (400, 420)  # bad pairs, or no such subscription
        frame, pong = await client.request(constants.PING, 8, m.Ping(42))
        assert pong.nonce == 42
    finally:
        client.close()


async def test_one_bad_publish_in_a_pipelined_run_fails_alone(broker, transport, name):
    await transport.create_topic(TopicSpec(name=name, max_message_size=1024))
    client = await RawClient.open(broker.url)
    try:
        good = m.Publish(name, [m.WireOutgoing(b"ok")])
        too_big = m.Publish(name, [m.WireOutgoing(b"x" * 2048)])
        for rid, body in ((1, good), (2, too_big), (3, good)):
            client.send(constants.PUBLISH, rid, body)
        frames = {}
        for _ in range(3):
            frame = await client.next_frame()
            frames[frame.request_id] = frame
        assert frames[1].type == frames[3].type == constants.PUBLISH | constants.REPLY_BIT
        assert frames[2].type == constants.ERROR
        assert decode_body(frames[2]).code == MessageTooLarge.code
    finally:
        client.close()
    assert (await transport.topic_info(name)).messages == 2
