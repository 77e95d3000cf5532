"""Codecs and typed payloads: JSON by default, msgpack selectable, pydantic validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel

from tidings.errors import InvalidPayload
from tidings.model import Delivery, Message
from tidings.service.codecs import JSON, MSGPACK, codec_for, codec_named
from tidings.service.payloads import PayloadType, encode_payload


class Order(BaseModel):
    order_id: str
    amount: float


@dataclass
class Point:
    x: int
    y: int


def message(body: bytes, content_type: str | None = None) -> Message:
    headers = {} if content_type is None else {"content-type": content_type}
    return Message(Delivery("t", "g", 0, 0, "id", None, headers, body, 0.0, 1), None)


def test_codecs_by_name_and_content_type():
    assert codec_named("json") is JSON and codec_named("msgpack") is MSGPACK
    assert codec_for("application/json; charset=utf-8", MSGPACK) is JSON
    assert codec_for("application/x-msgpack", JSON) is MSGPACK
    assert codec_for(None, MSGPACK) is MSGPACK
    with pytest.raises(InvalidPayload, match="text/csv"):
        codec_for("text/csv", JSON)


@pytest.mark.parametrize("codec", [JSON, MSGPACK])
def test_model_round_trip(codec):
    body, content_type = encode_payload(Order(order_id="o-1", amount=9.5), codec)
    assert content_type == codec.content_type
    decoded = PayloadType(Order).decode(message(body, content_type))
    assert decoded == Order(order_id="o-1", amount=9.5)


def test_plain_types_and_dataclasses():
    body, ct = encode_payload(Point(1, 2))
    assert PayloadType(Point).decode(message(body, ct)) == Point(1, 2)
    body, ct = encode_payload([1, 2, 3])
    assert PayloadType(list[int]).decode(message(body, ct)) == [1, 2, 3]
    assert PayloadType(Any).decode(message(b'{"a": 1}')) == {"a": 1}


def test_bytes_are_untouched_and_message_is_the_message():
    body, ct = encode_payload(b"\x00raw")
    assert (body, ct) == (b"\x00raw", "application/octet-stream")
    raw = message(b"\xffnot json", "application/octet-stream")
    assert PayloadType(bytes).decode(raw) == b"\xffnot json"
    assert PayloadType(Message).decode(raw) is raw


def test_validation_errors_name_the_field():
    with pytest.raises(InvalidPayload, match=r"invalid payload for Order: amount: .*"):
        PayloadType(Order).decode(message(b'{"order_id": "o", "amount": "lots"}'))
    with pytest.raises(InvalidPayload, match="order_id"):
        PayloadType(Order).decode(
            message(msgspec.msgpack.encode({"amount": 1}), "application/msgpack")
        )
    with pytest.raises(InvalidPayload):
        PayloadType(Order).decode(message(b"{broken"))
    with pytest.raises(InvalidPayload, match="JSON"):
        PayloadType(Any).decode(message(b"{broken"))


def test_unserializable_payload_is_a_clear_error():
    with pytest.raises(Exception, match="cannot serialize"):
        encode_payload(object())
