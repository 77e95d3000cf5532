"""tidings errors are also the built-in exceptions ordinary `except` clauses expect."""

from __future__ import annotations

import asyncio
import pickle

import pytest

import tidings
from tidings import errors


def test_errors_are_also_builtin_exceptions():
    assert issubclass(errors.BadRequest, ValueError)
    assert issubclass(errors.InvalidName, ValueError)
    assert issubclass(errors.MessageTooLarge, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    assert issubclass(errors.Timeout, TimeoutError)
    assert issubclass(errors.RequestTimeout, asyncio.TimeoutError)
    for cls in (errors.BadRequest, errors.NotFound, errors.RequestTimeout):
        err = cls("what went wrong")
        assert str(err) == "what went wrong" and err.message == "what went wrong"
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is cls and again.message == "what went wrong"
        assert type(errors.error_for_code(err.code, "m")) is cls


def test_bad_arguments_raise_bad_request():
    svc = tidings.Service("t", url="memory://")
    with pytest.raises(errors.BadRequest, match="concurrency"):

        @svc.on("t.x", concurrency=0)
        async def handle(body: bytes) -> None: ...

    with pytest.raises(errors.BadRequest, match="timeout"):

        @svc.on("t.x", timeout=0)
        async def handle2(body: bytes) -> None: ...

    with pytest.raises(errors.BadRequest, match="factor"):
        tidings.Backoff(factor=0.5)
    try:
        tidings.Backoff(jitter=2)
    except ValueError as exc:  # an ordinary `except ValueError` catches it
        assert isinstance(exc, errors.BadRequest)
