"""Fuzzing the decoder: whatever arrives, the only failure is a clean ProtocolError."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.errors import ProtocolError
from tidings.protocol import Frame, FrameDecoder, constants, decode_body, frame_bytes, raw_frame
from tidings.protocol.messages import BODY_TYPES

from .samples import SAMPLES

ALL_TYPES = frozenset(BODY_TYPES)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _drain(decoder: FrameDecoder, chunks: list[bytes]) -> list[Frame]:
    frames: list[Frame] = []
    try:
        for chunk in chunks:
            frames += decoder.feed(chunk)
    except ProtocolError:
        pass
    for frame in frames:
        try:
            decode_body(frame)
        except ProtocolError:
            pass
    return frames


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_only_raise_protocol_error(chunks):
    decoder = FrameDecoder(constants.CLIENT_TO_SERVER, max_frame_size=4096)
    _drain(decoder, chunks)
    assert decoder.buffered <= sum(map(len, chunks))


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 2**32 - 1), st.binary())
def test_any_header_is_either_waited_on_or_refused(length, frame_type, request_id, tail):
    decoder = FrameDecoder(constants.CLIENT_TO_SERVER, max_frame_size=1 << 20)
    header = struct.pack(">IBI", length, frame_type, request_id)
    try:
        assert decoder.feed(header) == ([] if length else [Frame(frame_type, request_id, b"")])
    except ProtocolError:
        assert length > 1 << 20 or frame_type not in constants.CLIENT_TO_SERVER
        return
    assert length <= 1 << 20 and frame_type in constants.CLIENT_TO_SERVER
    try:
        frames = decoder.feed(tail)
    except ProtocolError:
        assert len(tail) > length  # only what follows the first frame can be refused
        return
    assert len(frames) >= (1 if 0 < length <= len(tail) else 0)
    assert decoder.buffered <= len(header) + len(tail)


@FUZZ
@given(
    st.lists(st.sampled_from(sorted(SAMPLES)), min_size=1, max_size=8),
    st.lists(st.integers(1, 200), max_size=30),
)
def test_valid_streams_split_anywhere_decode_identically(types, cuts):
    stream = b"".join(frame_bytes(t, i, SAMPLES[t]) for i, t in enumerate(types))
    chunks, pos = [], 0
    for cut in cuts:
        chunks.append(stream[pos : pos + cut])
        pos += cut
    chunks.append(stream[pos:])
    frames = _drain(FrameDecoder(ALL_TYPES), chunks)
    assert [(f.request_id, f.type) for f in frames] == list(enumerate(types))
    assert [decode_body(f) for f in frames] == [SAMPLES[t] for t in types]


@FUZZ
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_truncated_frames_wait_without_error(frame_type, data):
    frame = frame_bytes(frame_type, 1, SAMPLES[frame_type])
    cut = data.draw(st.integers(0, len(frame) - 1))
    decoder = FrameDecoder(ALL_TYPES)
    assert decoder.feed(frame[:cut]) == []
    assert decoder.buffered == cut


@FUZZ
@given(st.sampled_from(sorted(BODY_TYPES)), st.binary(max_size=200))
def test_random_payloads_only_raise_protocol_error(frame_type, payload):
    [frame] = FrameDecoder(ALL_TYPES).feed(raw_frame(frame_type, 1, payload))
    try:
        decode_body(frame)
    except ProtocolError:
        pass


@FUZZ
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_mutated_payloads_only_raise_protocol_error(frame_type, data):
    payload = bytearray(frame_bytes(frame_type, 1, SAMPLES[frame_type])[constants.HEADER_SIZE :])
    for _ in range(data.draw(st.integers(1, 4))):
        if payload:
            i = data.draw(st.integers(0, len(payload) - 1))
            payload[i] = data.draw(st.integers(0, 255))
    [frame] = FrameDecoder(ALL_TYPES).feed(raw_frame(frame_type, 1, bytes(payload)))
    try:
        decode_body(frame)
    except ProtocolError:
        pass
