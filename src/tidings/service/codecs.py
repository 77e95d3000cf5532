"""Body codecs: JSON (default) and MessagePack, chosen by the ``content-type`` header.

A codec turns plain Python data (dicts, lists, str, numbers, bools, None) into bytes and back;
typing and validation are :mod:`tidings.service.payloads`' job.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from ..errors import BadRequest, InvalidPayload

OCTET_STREAM = "application/octet-stream"


class Codec(Protocol):
    name: str
    content_type: str

    def encode(self, value: Any) -> bytes: ...
    def decode(self, data: bytes) -> Any: ...


class JsonCodec:
    name = "json"
    content_type = "application/json"

    def encode(self, value: Any) -> bytes:
        return msgspec.json.encode(value)

    def decode(self, data: bytes) -> Any:
        try:
            return msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise InvalidPayload(f"invalid payload: the body is not valid JSON ({exc})") from exc


class MsgpackCodec:
    name = "msgpack"
    content_type = "application/msgpack"

    def encode(self, value: Any) -> bytes:
        return msgspec.msgpack.encode(value)

    def decode(self, data: bytes) -> Any:
        try:
            return msgspec.msgpack.decode(data)
        except msgspec.DecodeError as exc:
            raise InvalidPayload(
                f"invalid payload: the body is not valid MessagePack ({exc})"
            ) from exc


JSON = JsonCodec()
MSGPACK = MsgpackCodec()
CODECS: dict[str, Codec] = {"json": JSON, "msgpack": MSGPACK}
_BY_CONTENT_TYPE: dict[str, Codec] = {
    "application/json": JSON,
    "text/json": JSON,
    "application/msgpack": MSGPACK,
    "application/x-msgpack": MSGPACK,
    "application/vnd.msgpack": MSGPACK,
}


def codec_named(name: str | Codec) -> Codec:
    """The codec called ``name`` ("json" or "msgpack"), or ``name`` if it is a codec."""
    if not isinstance(name, str):
        return name
    try:
        return CODECS[name]
    except KeyError:
        raise BadRequest(f"unknown codec {name!r}: use one of {', '.join(CODECS)}") from None


def codec_for(content_type: str | None, default: Codec) -> Codec:
    """The codec of a received body: by its ``content-type`` header, ``default`` if absent."""
    if not content_type:
        return default
    media = content_type.split(";", 1)[0].strip().lower()
    codec = _BY_CONTENT_TYPE.get(media)
    if codec is None:
        raise InvalidPayload(
            f"invalid payload: content type {content_type!r} cannot be decoded; "
            f"supported: {', '.join(sorted(_BY_CONTENT_TYPE))}, or take `bytes` in the handler"
        )
    return codec
