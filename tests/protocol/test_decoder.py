"""The frame decoder state machine: partial input, limits and wrong frame types."""

from __future__ import annotations

import struct

import pytest

from tidings.errors import ProtocolError
from tidings.protocol import FrameDecoder, constants, decode_body, frame_bytes, raw_frame
from tidings.protocol.messages import BODY_TYPES

from .samples import SAMPLES

ALL_TYPES = frozenset(BODY_TYPES)
STREAM = b"".join(frame_bytes(t, i + 1, body) for i, (t, body) in enumerate(SAMPLES.items()))


def test_byte_by_byte_gives_every_frame_in_order():
    decoder = FrameDecoder(ALL_TYPES)
    frames = []
    for i in range(len(STREAM)):
        frames += decoder.feed(STREAM[i : i + 1])
    assert [f.type for f in frames] == list(SAMPLES)
    assert [decode_body(f) for f in frames] == list(SAMPLES.values())
    assert decoder.buffered == 0


def test_whole_stream_at_once_and_in_odd_chunks():
    for size in (len(STREAM), 7, 13, 4096):
        decoder = FrameDecoder(ALL_TYPES)
        frames = []
        for i in range(0, len(STREAM), size):
            frames += decoder.feed(STREAM[i : i + size])
        assert [f.request_id for f in frames] == list(range(1, len(SAMPLES) + 1))


def test_empty_feed_and_empty_payload():
    decoder = FrameDecoder(ALL_TYPES)
    assert decoder.feed(b"") == []
    [frame] = decoder.feed(raw_frame(constants.HEARTBEAT, 0, b""))
    assert frame.payload == b""


def test_oversize_length_is_refused_from_the_first_four_bytes():
    decoder = FrameDecoder(ALL_TYPES, max_frame_size=1024)
    with pytest.raises(ProtocolError, match="exceeds the limit of 1024 bytes"):
        decoder.feed(struct.pack(">I", 1025))
    with pytest.raises(ProtocolError, match="broken after an earlier error"):
        decoder.feed(b"more")


def test_http_request_is_refused():
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        FrameDecoder(constants.CLIENT_TO_SERVER).feed(b"GET / HTTP/1.1\r\n")


def test_declared_length_reserves_nothing():
    decoder = FrameDecoder(ALL_TYPES, max_frame_size=constants.MAX_FRAME_SIZE_LIMIT)
    header = struct.pack(">IBI", constants.MAX_FRAME_SIZE_LIMIT, constants.PUBLISH, 1)
    assert decoder.feed(header + b"abc") == []
    assert decoder.buffered == len(header) + 3


def test_unknown_frame_type_is_refused():
    decoder = FrameDecoder(constants.CLIENT_TO_SERVER)
    with pytest.raises(ProtocolError, match="unexpected frame type 0x5f"):
        decoder.feed(raw_frame(0x5F, 1, b""))


def test_frames_of_the_other_direction_are_refused():
    with pytest.raises(ProtocolError, match="unexpected frame type DELIVER"):
        FrameDecoder(constants.CLIENT_TO_SERVER).feed(
            frame_bytes(constants.DELIVER, 0, SAMPLES[constants.DELIVER])
        )
    with pytest.raises(ProtocolError, match="unexpected frame type PUBLISH"):
        FrameDecoder(constants.SERVER_TO_CLIENT).feed(
            frame_bytes(constants.PUBLISH, 1, SAMPLES[constants.PUBLISH])
        )


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        FrameDecoder(ALL_TYPES, max_frame_size=0)
    with pytest.raises(ValueError):
        FrameDecoder(ALL_TYPES, max_frame_size=constants.MAX_FRAME_SIZE_LIMIT + 1)


def test_large_frame_in_many_chunks_is_linear():
    # PUBLISH ["t", [[<4 MiB of zero bytes>]]] written out by hand
    payload = b"\x92\xa1t\x91\x91\xc6" + (4 << 20).to_bytes(4, "big") + bytes(4 << 20)
    big = raw_frame(constants.PUBLISH, 1, payload)
    decoder = FrameDecoder(ALL_TYPES)
    frames = []
    for i in range(0, len(big), 1024):  # 4096 feeds; quadratic copying would take minutes
        frames += decoder.feed(big[i : i + 1024])
    assert len(frames) == 1
    assert len(decode_body(frames[0]).messages[0].body) == 4 << 20
