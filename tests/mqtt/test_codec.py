"""The MQTT codec: every packet type round-trips in 3.1.1 and 5.0, and each rule it checks
refuses with the reason code a server answers with."""

from __future__ import annotations

import pytest

from tidings.errors import ProtocolError
from tidings.server.mqtt import codec as m

CONNECT5 = m.Connect("dev-1", m.V5, True, 30, "u", b"pw", None, {"receive_maximum": 10})


def _decode_all(data: bytes, *, server: bool = True, version: int = m.V5) -> list[m.Packet]:
    decoder = m.PacketDecoder(server=server)
    if server:
        decoder.feed(m.encode(m.Connect("c", version), version))
    else:
        decoder.version = version
    return decoder.feed(data)


CLIENT_PACKETS = [
    m.Publish("a/b", b"hi", 1, True, True, 7, {"user_property": [("k", "v"), ("k", "w")]}),
    m.Publish("a/b", b"", 0),
    m.Ack(m.PUBACK, 1),
    m.Ack(m.PUBREC, 2, m.NO_MATCHING_SUBSCRIBERS, {"reason_string": "none"}),
    m.Ack(m.PUBREL, 3),
    m.Ack(m.PUBCOMP, 65535),
    m.Subscribe(5, [m.Subscription("a/+/c", 1, True, True, 2), m.Subscription("#")]),
    m.Unsubscribe(6, ["a/#", "b"]),
    m.Pingreq(),
    m.Disconnect(),
    m.Disconnect(m.KEEP_ALIVE_TIMEOUT, {"reason_string": "bye"}),
    m.Auth(0x18, {"authentication_method": "x"}),
]


@pytest.mark.parametrize("packet", CLIENT_PACKETS, ids=lambda p: type(p).__name__)
def test_client_packets_round_trip_in_v5(packet):
    assert _decode_all(m.encode(packet)) == [packet]


def test_connect_round_trips_with_will_in_both_versions():
    will = m.Will("last/words", b"gone", 1, True, {"will_delay_interval": 5})
    for version in (m.V311, m.V5):
        packet = m.Connect("dev", version, False, 10, "user", b"secret", will)
        if version == m.V311:
            will.properties = {}
        else:
            packet.properties = {"session_expiry_interval": 60}
        decoder = m.PacketDecoder()
        assert decoder.feed(m.encode(packet)) == [packet]
        assert decoder.version == version


def test_server_packets_round_trip_on_a_client_decoder():
    packets = [
        m.Connack(m.SUCCESS, True, {"receive_maximum": 100, "maximum_qos": 1}),
        m.Suback(5, [0, 1, m.NOT_AUTHORIZED]),
        m.Unsuback(6, [0, m.NO_SUBSCRIPTION_EXISTED]),
        m.Pingresp(),
        m.Publish("x", b"y", 1, packet_id=9, properties={"subscription_identifier": [3, 4]}),
    ]
    data = b"".join(m.encode(p) for p in packets)
    assert _decode_all(data, server=False) == packets


def test_v311_leaves_properties_and_reason_codes_out():
    data = m.encode(m.Ack(m.PUBACK, 4, m.NOT_AUTHORIZED), m.V311)
    assert data == b"\x40\x02\x00\x04"
    assert m.encode(m.Unsuback(6, [0]), m.V311) == b"\xb0\x02\x00\x06"
    assert _decode_all(m.encode(m.Publish("t", b"p", 1, packet_id=1), m.V311), version=m.V311) == [
        m.Publish("t", b"p", 1, packet_id=1)
    ]


def test_bytes_arrive_in_any_split():
    data = m.encode(CONNECT5) + b"".join(m.encode(p) for p in CLIENT_PACKETS)
    decoder = m.PacketDecoder()
    got = []
    for i in range(len(data)):
        got += decoder.feed(data[i : i + 1])
    assert got == [CONNECT5, *CLIENT_PACKETS]
    assert decoder.buffered == 0


def test_remaining_length_varint_limits():
    assert m.varint(0) == b"\x00"
    assert m.varint(127) == b"\x7f"
    assert m.varint(128) == b"\x80\x01"
    assert m.varint(m.MAX_REMAINING) == b"\xff\xff\xff\x7f"
    with pytest.raises(ValueError):
        m.varint(m.MAX_REMAINING + 1)
    decoder = m.PacketDecoder()
    decoder.feed(m.encode(CONNECT5))
    with pytest.raises(m.MalformedPacket) as caught:
        decoder.feed(b"\x30\xff\xff\xff\xff\x01")
    assert caught.value.reason == m.MALFORMED


def test_oversize_packet_is_refused_from_its_header():
    decoder = m.PacketDecoder(max_packet_size=1000)
    decoder.feed(m.encode(CONNECT5))
    with pytest.raises(m.MalformedPacket) as caught:
        decoder.feed(b"\x30\xe8\x07")  # a 1000-byte remaining length: 1003 bytes in all
    assert caught.value.reason == m.PACKET_TOO_LARGE
    assert isinstance(caught.value, ProtocolError)  # a tidings error, as the native protocol's


BAD = [
    (b"\x30\x03\x00\x01a", "first packet must be CONNECT", m.PROTOCOL_ERROR, False),
    (b"\x10\x05\x00\x02XY\x04", "not MQTT", m.PROTOCOL_ERROR, False),
    (b"\x10\x07\x00\x04MQTT\x03", "level 3", m.UNSUPPORTED_VERSION, False),
    (b"\x80\x05\x00\x01\x00\x01a", "flags", m.MALFORMED, True),  # SUBSCRIBE without flag 2
    (b"\x36\x05\x00\x01a\x00\x01", "QoS 3", m.MALFORMED, True),
    (b"\x38\x03\x00\x01a", "DUP", m.PROTOCOL_ERROR, True),
    (b"\x30\x04\x00\x01+\x00", "wildcard", m.TOPIC_NAME_INVALID, True),
    (b"\x32\x05\x00\x01a\x00\x00", "identifier 0", m.PROTOCOL_ERROR, True),
    (b"\x30\x05\x00\x01a\x02\x12", "ends inside", m.MALFORMED, True),
    (b"\x30\x08\x00\x01a\x04\x12\x00\x01b", "not allowed in PUBLISH", m.PROTOCOL_ERROR, True),
    (
        b"\x30\x09\x00\x01a\x05\x11\x00\x00\x00\x01",
        "session_expiry_interval is not allowed",
        m.PROTOCOL_ERROR,
        True,
    ),
    (b"\x30\x08\x00\x01a\x04\x01\x01\x01\x01", "appears twice", m.PROTOCOL_ERROR, True),
    (b"\x30\x06\x00\x01a\x02\x01\x02", "0 or 1", m.PROTOCOL_ERROR, True),
    (b"\x30\x05\x00\x02\xc3\x28\x00", "UTF-8", m.MALFORMED, True),
    (b"\x30\x04\x00\x01\x00\x00", "U+0000", m.MALFORMED, True),
    (b"\x82\x06\x00\x01\x00\x00\x03a", "ends inside", m.MALFORMED, True),
    (b"\x82\x09\x00\x01\x00\x00\x03a#b\x00", "'#' must be", m.PROTOCOL_ERROR, True),
    (b"\x82\x09\x00\x01\x00\x00\x03a+/\x00", "'+' must be", m.PROTOCOL_ERROR, True),
    (b"\x82\x07\x00\x01\x00\x00\x01a\xc0", "options", m.MALFORMED, True),
    (b"\x82\x03\x00\x01\x00", "without a topic filter", m.PROTOCOL_ERROR, True),
    (b"\x20\x02\x00\x00", "may not send CONNACK", m.PROTOCOL_ERROR, True),
    (b"\x00\x00", "type 0", m.MALFORMED, True),
    (b"\xc0\x01\x00", "bytes after the end of PINGREQ", m.MALFORMED, True),
    (b"\xe0\x03\x00\x00\x00", "bytes after", m.MALFORMED, True),
]


@pytest.mark.parametrize(("data", "says", "reason", "after_connect"), BAD)
def test_malformed_packets_raise_with_their_reason_code(data, says, reason, after_connect):
    decoder = m.PacketDecoder()
    if after_connect:
        decoder.feed(m.encode(CONNECT5))
    with pytest.raises(m.MalformedPacket) as caught:
        decoder.feed(data)
    assert says in str(caught.value)
    assert caught.value.reason == reason


def test_a_second_connect_is_a_protocol_error():
    decoder = m.PacketDecoder()
    decoder.feed(m.encode(CONNECT5))
    with pytest.raises(m.MalformedPacket, match="second CONNECT"):
        decoder.feed(m.encode(CONNECT5))


def test_connect_flag_rules():
    base = m.encode(m.Connect("c", m.V311))
    reserved = bytearray(base)
    reserved[9] |= 0x01
    with pytest.raises(m.MalformedPacket, match="reserved"):
        m.PacketDecoder().feed(bytes(reserved))
    password_only = bytearray(m.encode(m.Connect("c", m.V311, password=b"p")))
    with pytest.raises(m.MalformedPacket, match="password only with a user"):
        m.PacketDecoder().feed(bytes(password_only))
    will_qos_without_will = bytearray(base)
    will_qos_without_will[9] |= 0x08
    with pytest.raises(m.MalformedPacket, match="will"):
        m.PacketDecoder().feed(bytes(will_qos_without_will))
