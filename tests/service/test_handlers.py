"""What @svc.on / @svc.reply read from a handler's signature, and what they refuse."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

import tidings
from tidings.errors import BadRequest


class Query(BaseModel):
    order_id: str


class Status(BaseModel):
    state: str


def test_payload_context_and_reply_types():
    svc = tidings.Service("svc")

    @svc.on("orders")
    async def on_order(query: Query, ctx: tidings.Context) -> None: ...

    @svc.reply("status")
    async def status(q: Query) -> Status: ...

    @svc.on("raw", group="raw")
    async def raw(body: bytes, ctx) -> None: ...

    a, b, c = svc.handlers
    assert (a.payload.annotation, a.context_param, a.group, a.responder) == (
        Query,
        "ctx",
        "svc",
        False,
    )
    assert b.responder and b.returns.annotation is Status and b.context_param is None
    assert c.payload.kind == "bytes" and c.context_param == "ctx" and c.group == "raw"


def test_an_optional_context_is_the_context_not_a_second_payload():
    svc = tidings.Service("svc")

    @svc.on("orders")
    async def a(query: Query, ctx: tidings.Context | None = None) -> None: ...

    @svc.on("orders", group="b")
    async def b(query: Query, c: typing.Optional[tidings.Context] = None) -> None: ...  # noqa: UP045

    @svc.on("orders", group="c")
    async def c(query: Query | None, extra: int | None = None) -> None: ...

    first, second, third = svc.handlers
    assert (first.payload.annotation, first.context_param) == (Query, "ctx")
    assert (second.payload.annotation, second.context_param) == (Query, "c")
    # a union without Context is a payload type, and an extra defaulted parameter is left alone
    assert (third.payload_param, third.context_param) == ("query", None)


def test_refusals_are_explicit():
    svc = tidings.Service("svc")
    with pytest.raises(TypeError, match="async def"):
        svc.on("t")(lambda payload: None)

    async def extra(payload: Query, ctx: tidings.Context, other: int) -> None: ...

    with pytest.raises(TypeError, match="other"):
        svc.on("t")(extra)
    with pytest.raises(ValueError, match="concurrency"):
        svc.on("t", concurrency=0)(_noop)
    with pytest.raises(tidings.errors.InvalidName):
        svc.on("bad topic!")(_noop)
    svc.on("t")(_noop)
    with pytest.raises(BadRequest, match="another group"):
        svc.on("t")(_noop)


async def _noop(payload: Query) -> None: ...
