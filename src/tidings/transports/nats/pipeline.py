"""Pipelined request/reply on one NATS connection: publishes and acknowledgements in flight.

Messages go out in order, each with a private reply subject, and their answers resolve futures
as they come back, so a batch pays one round trip instead of one per message. Used for
publishing (JetStream answers with a PubAck or an error once the message is stored, replicated
to a quorum on a cluster) and for acknowledgements (JetStream answers an empty message once
the ack is applied). At most ``max_pending`` requests are unanswered at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api

T = TypeVar("T")

_ERRORS: dict[int, type[nats.js.errors.APIError]] = {
    503: nats.js.errors.ServiceUnavailableError,
    500: nats.js.errors.ServerError,
    404: nats.js.errors.NotFoundError,
    400: nats.js.errors.BadRequestError,
}


def api_error(err: dict[str, Any]) -> nats.js.errors.APIError:
    cls = _ERRORS.get(err.get("code", 0), nats.js.errors.APIError)
    return cls(
        code=err.get("code"), description=err.get("description"), err_code=err.get("err_code")
    )


def pub_ack(msg: Msg) -> api.PubAck:
    resp = json.loads(msg.data)
    if "error" in resp:
        raise api_error(resp["error"])
    return api.PubAck.from_response(resp)


def empty(_msg: Msg) -> None:
    return None


class Pipeline(Generic[T]):
    def __init__(self, nc: Client, parse: Callable[[Msg], T], max_pending: int = 4096) -> None:
        self._nc = nc
        self._parse = parse
        self._prefix = nc.new_inbox() + "."
        self._ids = itertools.count(1)
        self._futures: dict[str, asyncio.Future[T]] = {}
        self._slots = asyncio.Semaphore(max_pending)
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._reply)

    async def send(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> asyncio.Future[T]:
        """Publish now; the future resolves with the parsed answer (or times out)."""
        await self._slots.acquire()
        token = str(next(self._ids))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        future.add_done_callback(lambda _f: self._done(token))
        self._futures[token] = future
        if timeout is not None:
            timer = loop.call_later(timeout, _expire, future)
            future.add_done_callback(lambda _f: timer.cancel())
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            future.cancel()
            raise
        return future

    def _done(self, token: str) -> None:
        if self._futures.pop(token, None) is not None:
            self._slots.release()

    async def _reply(self, msg: Msg) -> None:
        future = self._futures.get(msg.subject[len(self._prefix) :])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(nats.js.errors.NoStreamResponseError())
            return
        try:
            future.set_result(self._parse(msg))
        except Exception as exc:
            future.set_exception(exc)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(nats.errors.TimeoutError())
