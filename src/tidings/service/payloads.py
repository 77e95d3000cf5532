"""Typed payloads: bodies decoded and validated by the handler's annotation (pydantic).

A handler's payload annotation decides what it receives:

- ``bytes``: the body, untouched (no content type needed);
- ``tidings.Message``: the received message itself;
- no annotation or ``Any``: the body decoded as plain data by its content type;
- anything else (a pydantic model, a dataclass, ``list[int]``, ``dict[str, float]``, ...):
  decoded, then validated with a pydantic ``TypeAdapter``. A body that fails raises
  :class:`tidings.errors.InvalidPayload` and the framework dead-letters the message.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pydantic
import pydantic_core

from ..errors import BadRequest, InvalidPayload
from ..model import Message
from .codecs import JSON, OCTET_STREAM, Codec, codec_for


def type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


def describe_validation_error(exc: pydantic.ValidationError, limit: int = 5) -> str:
    """A one-line summary: ``field.path: message; ...``."""
    parts = []
    for error in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "<root>"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


class PayloadType:
    """The declared type of a payload and how bodies decode into it."""

    def __init__(self, annotation: Any = Any) -> None:
        if annotation is inspect.Parameter.empty or annotation is None:
            annotation = Any
        self.annotation = annotation
        self._adapter: pydantic.TypeAdapter[Any] | None = None
        if annotation is bytes:
            self.kind = "bytes"
        elif annotation is Message:
            self.kind = "message"
        elif annotation is Any:
            self.kind = "any"
        else:
            self.kind = "typed"
            try:
                self._adapter = pydantic.TypeAdapter(annotation)
            except pydantic.PydanticSchemaGenerationError as exc:
                raise TypeError(
                    f"cannot use {type_name(annotation)} as a payload type: {exc}"
                ) from exc

    @property
    def name(self) -> str:
        return type_name(self.annotation)

    def decode(self, message: Message, default_codec: Codec = JSON) -> Any:
        """The payload of ``message``. Raises InvalidPayload if it does not validate."""
        kind = self.kind
        if kind == "bytes":  # the fast path: the body as it came
            return message.body
        if kind == "message":
            return message
        return self.decode_body(message.body, message.headers.get("content-type"), default_codec)

    def decoder(self, default_codec: Codec = JSON) -> Callable[[Message], Any]:
        """:meth:`decode` with ``default_codec``, chosen once for the kind of payload (a
        handler's plan, built when it starts)."""
        if self.kind == "bytes":
            return _body
        if self.kind == "message":
            return _itself
        decode_body = self.decode_body
        return lambda message: decode_body(
            message.body, message.headers.get("content-type"), default_codec
        )

    def decode_body(
        self, body: bytes, content_type: str | None, default_codec: Codec = JSON
    ) -> Any:
        """The payload of a bare body (a reply, say) with its content type."""
        if self.kind == "bytes":
            return body
        if self.kind == "message":
            raise TypeError("a Message payload needs the message: use decode()")
        codec = codec_for(content_type, default_codec)
        if self._adapter is None:
            return codec.decode(body)
        try:
            if codec is JSON:
                return self._adapter.validate_json(body)
            return self._adapter.validate_python(codec.decode(body))
        except pydantic.ValidationError as exc:
            raise InvalidPayload(
                f"invalid payload for {self.name}: {describe_validation_error(exc)}"
            ) from exc

    def json_schema(self, ref_template: str) -> dict[str, Any] | None:
        """The JSON Schema of the type (None for raw bytes and messages)."""
        if self.kind in ("bytes", "message"):
            return None
        if self._adapter is None:
            return {}
        return self._adapter.json_schema(ref_template=ref_template)


def _body(message: Message) -> bytes:
    return message.body


def _itself(message: Message) -> Message:
    return message


def encode_payload(value: Any, codec: Codec = JSON) -> tuple[bytes, str]:
    """``(body, content type)`` for an outgoing payload. ``bytes`` go as they are
    (application/octet-stream); anything pydantic can serialize goes through ``codec``."""
    if type(value) is bytes:  # the common case, before the isinstance of a union
        return value, OCTET_STREAM
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), OCTET_STREAM
    try:
        plain = pydantic_core.to_jsonable_python(value)
    except pydantic_core.PydanticSerializationError as exc:
        raise BadRequest(
            f"cannot serialize a {type(value).__name__} payload: {exc}; publish a pydantic "
            "model, a dataclass, plain JSON data or bytes"
        ) from exc
    return codec.encode(plain), codec.content_type
