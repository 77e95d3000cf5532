"""Every frame type round-trips through encode, the decoder and decode_body."""

from __future__ import annotations

import pytest

from tidings.errors import ProtocolError
from tidings.model import Delivery, Outgoing
from tidings.protocol import FrameDecoder, constants, decode_body, frame_bytes, raw_frame
from tidings.protocol.messages import BODY_TYPES, Deliver, Publish, WireDelivery, WireOutgoing

from .samples import SAMPLES

ALL_TYPES = frozenset(BODY_TYPES)


def test_every_frame_type_has_a_sample_and_a_body_type():
    assert set(SAMPLES) == set(BODY_TYPES)
    for t in constants.REQUEST_TYPES - constants.UNANSWERED_TYPES:
        assert t | constants.REPLY_BIT in BODY_TYPES, constants.frame_name(t)
    assert set(BODY_TYPES) <= constants.CLIENT_TO_SERVER | constants.SERVER_TO_CLIENT


def test_directions_do_not_overlap():
    assert not constants.CLIENT_TO_SERVER - {constants.HEARTBEAT} & constants.SERVER_TO_CLIENT


@pytest.mark.parametrize("frame_type", sorted(SAMPLES), ids=constants.frame_name)
def test_round_trip(frame_type):
    body = SAMPLES[frame_type]
    data = frame_bytes(frame_type, 42, body)
    frames = FrameDecoder(ALL_TYPES).feed(data)
    assert len(frames) == 1
    assert frames[0].type == frame_type
    assert frames[0].request_id == 42
    assert decode_body(frames[0]) == body


def test_wire_structs_are_the_model_types():
    frame = frame_bytes(constants.PUBLISH, 1, SAMPLES[constants.PUBLISH])
    body = decode_body(FrameDecoder(ALL_TYPES).feed(frame)[0])
    assert all(isinstance(m, Outgoing) for m in body.messages)
    deliver = decode_body(
        FrameDecoder(ALL_TYPES).feed(frame_bytes(constants.DELIVER, 0, SAMPLES[constants.DELIVER]))[
            0
        ]
    )
    assert all(isinstance(d, Delivery) for d in deliver.deliveries)


def test_plain_tuples_encode_like_the_wire_structs():
    d = SAMPLES[constants.DELIVER].deliveries[0]
    import msgspec

    as_tuple = frame_bytes(constants.DELIVER, 0, (3, [msgspec.structs.astuple(d)]))
    assert as_tuple == frame_bytes(constants.DELIVER, 0, Deliver(3, [d]))
    o = WireOutgoing(b"x", None, {}, "id")
    assert decode_body(
        FrameDecoder(ALL_TYPES).feed(
            frame_bytes(constants.PUBLISH, 1, ("t", [(b"x", None, {}, "id")]))
        )[0]
    ).messages == [o]
    assert isinstance(d, WireDelivery)


def test_wrong_payload_type_is_a_clear_protocol_error():
    frame = FrameDecoder(ALL_TYPES).feed(raw_frame(constants.PUBLISH, 9, b"\x92\x01\x90"))[0]
    with pytest.raises(ProtocolError, match=r"malformed PUBLISH payload \(request 9\)"):
        decode_body(frame)


def test_garbage_payload_is_a_protocol_error():
    frame = FrameDecoder(ALL_TYPES).feed(raw_frame(constants.ACK, 1, b"\xc1\xff"))[0]
    with pytest.raises(ProtocolError, match="malformed ACK"):
        decode_body(frame)


def test_decode_body_with_the_expected_struct_returns_it():
    frame = FrameDecoder(ALL_TYPES).feed(
        frame_bytes(constants.PUBLISH, 1, SAMPLES[constants.PUBLISH])
    )[0]
    body = decode_body(frame, Publish)
    assert isinstance(body, Publish) and body == SAMPLES[constants.PUBLISH]


def test_decode_body_refuses_a_frame_of_another_struct():
    frame = FrameDecoder(ALL_TYPES).feed(frame_bytes(constants.ACK, 1, SAMPLES[constants.ACK]))[0]
    with pytest.raises(ProtocolError, match="the ACK frame carries Ack, not Publish"):
        decode_body(frame, Publish)
