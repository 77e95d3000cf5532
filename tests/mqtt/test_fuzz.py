"""Fuzzing the MQTT decoder: whatever arrives, the only failure is its own MalformedPacket
(with a reason code), and what it decodes re-encodes to a packet that decodes the same."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.server.mqtt import codec as m

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REASONS = {
    m.MALFORMED, m.PROTOCOL_ERROR, m.UNSUPPORTED_VERSION, m.TOPIC_NAME_INVALID,
    m.PACKET_TOO_LARGE,
}  # fmt: skip


def _drain(decoder: m.PacketDecoder, chunks: list[bytes]) -> list[m.Packet]:
    packets: list[m.Packet] = []
    for chunk in chunks:
        try:
            packets += decoder.feed(chunk)
        except m.MalformedPacket as exc:
            assert exc.reason in REASONS
            break
    return packets


def _connected(version: int) -> m.PacketDecoder:
    decoder = m.PacketDecoder(max_packet_size=4096)
    decoder.feed(m.encode(m.Connect("fuzz", version), version))
    return decoder


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_before_connect(chunks):
    decoder = m.PacketDecoder(max_packet_size=4096)
    _drain(decoder, chunks)
    assert decoder.buffered <= sum(map(len, chunks))


@FUZZ
@given(st.sampled_from([m.V311, m.V5]), st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_after_connect(version, chunks):
    decoder = _connected(version)
    for packet in _drain(decoder, chunks):  # what decodes, encodes back to the same packet
        again = m.PacketDecoder(server=not isinstance(packet, m.Connack))
        again.version = version
        assert again.feed(m.encode(packet, version)) == [packet]


@FUZZ
@given(
    st.sampled_from([m.V311, m.V5]),
    st.integers(1, 15),
    st.integers(0, 15),
    st.binary(max_size=300),
)
def test_any_type_flags_and_body(version, ptype, flags, body):
    """A well-framed packet of any type and flags with any body: decoded or refused."""
    decoder = _connected(version)
    data = bytes([ptype << 4 | flags]) + m.varint(len(body)) + body
    _drain(decoder, [data])
    assert decoder.buffered == 0 or decoder.buffered == len(data)


_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00+#/"), max_size=8
)
_topic = st.lists(_text, min_size=1, max_size=4).map("/".join).filter(bool)
_props = st.fixed_dictionaries(
    {},
    optional={
        "user_property": st.lists(st.tuples(_text, _text), min_size=1, max_size=3),
        "message_expiry_interval": st.integers(0, 2**32 - 1),
        "content_type": _text,
        "correlation_data": st.binary(max_size=8),
        "response_topic": _topic,
    },
)


@FUZZ
@given(
    _topic,
    st.binary(max_size=200),
    st.integers(0, 2),
    st.booleans(),
    st.integers(1, 65535),
    _props,
    st.integers(0, 40),
)
def test_publish_round_trips_and_every_truncation_is_refused(
    topic, payload, qos, retain, pid, props, cut
):
    packet = m.Publish(topic, payload, qos, retain, False, pid if qos else None, props)
    data = m.encode(packet)
    assert _connected(m.V5).feed(data) == [packet]
    # the same packet with a remaining length that cuts it short: never a crash
    header = 1 + next(k for k in range(1, 5) if len(m.varint(len(data) - 1 - k)) == k)
    body = data[header:][: max(0, len(data) - header - cut)]
    decoder = _connected(m.V5)
    _drain(decoder, [bytes([data[0]]) + m.varint(len(body)) + body])
