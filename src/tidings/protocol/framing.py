"""Frames: encoding into a write buffer and the incremental decoder state machine.

A frame is ``u32 payload length | u8 frame type | u32 request id | payload`` (big-endian).
:class:`FrameDecoder` turns a byte stream into :class:`Frame` objects without ever reserving
memory for a length that was declared but not sent: it only holds the bytes it was given, and a
declared length above the limit is refused as soon as the header arrives. Payloads stay bytes
until :func:`decode_body` turns them into the Struct of their frame type.
"""

from __future__ import annotations

import struct
from typing import Any, TypeVar, overload

import msgspec

from ..errors import ProtocolError
from . import constants as c
from .messages import BODY_TYPES

_HEADER = struct.Struct(c.HEADER_FORMAT)
_pack_into = _HEADER.pack_into
_unpack_from = _HEADER.unpack_from
_HEADER_SIZE = c.HEADER_SIZE
_PLACEHOLDER = bytes(_HEADER_SIZE)

_encoder = msgspec.msgpack.Encoder()
_encode_into = _encoder.encode_into
_decoders: dict[int, msgspec.msgpack.Decoder[Any]] = {
    t: msgspec.msgpack.Decoder(body) for t, body in BODY_TYPES.items()
}

_Body = TypeVar("_Body")


class Frame(msgspec.Struct, gc=False):
    """One received frame; ``payload`` is still MessagePack (see :func:`decode_body`)."""

    type: int
    request_id: int
    payload: bytes

    def __repr__(self) -> str:
        return (
            f"Frame({c.frame_name(self.type)}, request_id={self.request_id}, "
            f"{len(self.payload)} bytes)"
        )


def encode_frame(out: bytearray, frame_type: int, request_id: int, body: object) -> None:
    """Append one frame carrying ``body`` (a Struct, or any msgpack-encodable value whose
    layout matches the frame type's payload) to ``out``."""
    start = len(out)
    out += _PLACEHOLDER
    _encode_into(body, out, start + _HEADER_SIZE)
    _pack_into(out, start, len(out) - start - _HEADER_SIZE, frame_type, request_id)


def frame_bytes(frame_type: int, request_id: int, body: object) -> bytes:
    """One frame as bytes."""
    out = bytearray()
    encode_frame(out, frame_type, request_id, body)
    return bytes(out)


def raw_frame(frame_type: int, request_id: int, payload: bytes) -> bytes:
    """A frame around an already encoded (or deliberately broken) payload."""
    return _HEADER.pack(len(payload), frame_type, request_id) + payload


@overload
def decode_body(frame: Frame) -> object: ...


@overload
def decode_body(frame: Frame, body_type: type[_Body]) -> _Body: ...


def decode_body(frame: Frame, body_type: type[Any] | None = None) -> object:
    """The payload of ``frame`` as its Struct; ProtocolError if it does not match the type.

    With ``body_type`` (the Struct the caller expects, e.g. ``decode_body(frame, Publish)``)
    the result is typed as that Struct, and a frame whose type carries another Struct is
    refused with ProtocolError instead of being decoded as the wrong thing."""
    decoder = _decoders.get(frame.type)
    if decoder is None:
        raise ProtocolError(f"frame type {c.frame_name(frame.type)} carries no payload")
    if body_type is not None and BODY_TYPES[frame.type] is not body_type:
        raise ProtocolError(
            f"the {c.frame_name(frame.type)} frame carries {BODY_TYPES[frame.type].__name__}, "
            f"not {body_type.__name__}"
        )
    try:
        return decoder.decode(frame.payload)
    except Exception as exc:  # DecodeError, or e.g. UnicodeDecodeError for a broken map key
        raise ProtocolError(
            f"malformed {c.frame_name(frame.type)} payload (request {frame.request_id}): {exc}"
        ) from exc


class FrameDecoder:
    """Feed it bytes as they arrive; get back the complete frames.

    ``accept`` is the set of frame types this side may receive (``CLIENT_TO_SERVER`` on the
    broker, ``SERVER_TO_CLIENT`` on a client). Any framing error (a length above
    ``max_frame_size``, a frame type not in ``accept``) raises :class:`ProtocolError` and
    leaves the decoder failed: the stream cannot be trusted afterwards, close the connection.
    """

    __slots__ = ("_buf", "_failed", "_need", "accept", "max_frame_size")

    def __init__(
        self, accept: frozenset[int], max_frame_size: int = c.DEFAULT_MAX_FRAME_SIZE
    ) -> None:
        if not 0 < max_frame_size <= c.MAX_FRAME_SIZE_LIMIT:
            raise ValueError(f"max_frame_size must be from 1 to {c.MAX_FRAME_SIZE_LIMIT}")
        self.accept = accept
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._need = 0  # bytes the buffer must hold before parsing is worth trying again
        self._failed: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that is not complete yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        if self._failed is not None:
            raise ProtocolError(f"the stream is broken after an earlier error: {self._failed}")
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return []
            data = bytes(self._buf)
            self._buf = bytearray()
        frames: list[Frame] = []
        append = frames.append
        pos = 0
        end = len(data)
        accept = self.accept
        limit = self.max_frame_size
        while True:
            if end - pos < _HEADER_SIZE:
                if end - pos >= 4 and int.from_bytes(data[pos : pos + 4], "big") > limit:
                    self._fail(int.from_bytes(data[pos : pos + 4], "big"), None)
                break
            length, frame_type, request_id = _unpack_from(data, pos)
            if length > limit:
                self._fail(length, None)
            if frame_type not in accept:
                self._fail(length, frame_type)
            stop = pos + _HEADER_SIZE + length
            if stop > end:
                break
            append(Frame(frame_type, request_id, data[pos + _HEADER_SIZE : stop]))
            pos = stop
        if pos < end:
            self._buf += data[pos:] if pos else data
            left = end - pos
            if left >= _HEADER_SIZE:
                self._need = _HEADER_SIZE + _unpack_from(data, pos)[0]
            else:
                self._need = 4 if left < 4 else _HEADER_SIZE
        return frames

    def _fail(self, length: int, frame_type: int | None) -> None:
        if frame_type is None:
            error = ProtocolError(
                f"frame of {length} bytes exceeds the limit of {self.max_frame_size} bytes "
                "(is this a tidings client? raise max_frame_size on both sides for larger "
                "batches)"
            )
        else:
            error = ProtocolError(
                f"unexpected frame type {c.frame_name(frame_type)} on this side of the "
                "connection (unknown operation, or a client and broker of different versions)"
            )
        self._failed = error
        self._buf = bytearray()
        raise error
