"""Pipelined JetStream publishing: messages go out in order, their acks are awaited together.

Each message is published with a private reply subject; JetStream answers there with a PubAck
(stream, sequence, duplicate) or an error once the message is stored (replicated to a quorum on
a cluster). At most ``max_pending`` messages are unanswered at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

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


class Publisher:
    def __init__(self, nc: Client, max_pending: int = 4096) -> None:
        self._nc = nc
        self._prefix = nc.new_inbox() + "."
        self._ids = itertools.count(1)
        self._futures: dict[str, asyncio.Future[api.PubAck]] = {}
        self._slots = asyncio.Semaphore(max_pending)
        self._sub = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._reply)

    async def send(
        self, subject: str, body: bytes, headers: dict[str, str]
    ) -> asyncio.Future[api.PubAck]:
        await self._slots.acquire()
        token = str(next(self._ids))
        future: asyncio.Future[api.PubAck] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda _f: self._done(token))
        self._futures[token] = future
        try:
            await self._nc.publish(subject, body, reply=self._prefix + token, headers=headers)
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
            resp = json.loads(msg.data)
        except ValueError as exc:
            future.set_exception(exc)
            return
        if "error" in resp:
            future.set_exception(api_error(resp["error"]))
        else:
            future.set_result(api.PubAck.from_response(resp))
