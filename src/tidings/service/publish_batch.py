"""One round trip for many messages that each pass through the publish middleware.

``Service.publish_many`` runs every message's call through the chain concurrently. The chain's
endpoint does not publish: it adds the (possibly changed) message to the batch and waits. Once
every call has either reached the endpoint or left the chain without it, the batch goes out in
one ``publish_many`` of the client and each waiting endpoint gets its own receipt back, so
middleware that looks at the result (the logging middleware's "published" line) sees the same
thing as for a single publish. A middleware that returns without calling on leaves its message
out; one that raises before the batch went out stops the whole batch (all or none).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..model import Outgoing, Receipt
from .middleware import PublishCall


class Batch:
    def __init__(self, calls: int, send: Callable[[list[Outgoing]], Awaitable[list[Receipt]]]):
        self._calls = calls
        self._send = send
        self._settled = 0  # calls that reached the endpoint or left the chain
        self._waiting: list[tuple[PublishCall, asyncio.Future[Receipt]]] = []
        self._reached: set[int] = set()  # id() of the calls that reached the endpoint
        self._error: BaseException | None = None  # a call that raised before reaching it
        self._all_in = asyncio.Event()

    async def endpoint(self, call: PublishCall) -> Receipt:
        fut: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._waiting.append((call, fut))
        self._reached.add(id(call))
        self._arrived()
        return await fut

    async def run(
        self, through_chain: Callable[[PublishCall], Awaitable[Any]], call: PublishCall
    ) -> Any:
        try:
            return await through_chain(call)
        except BaseException as exc:
            if id(call) not in self._reached and self._error is None:
                self._error = exc  # refused before the batch went out: nothing is sent
            raise
        finally:
            if id(call) not in self._reached:
                self._arrived()  # it left the chain without reaching the endpoint

    def _arrived(self) -> None:
        self._settled += 1
        if self._settled == self._calls:
            self._all_in.set()

    async def flush(self) -> None:
        """Wait for every call, then publish what reached the endpoint in one round trip."""
        await self._all_in.wait()
        waiting = self._waiting
        if not waiting:
            return
        if self._error is not None:  # all or none: one refused message stops the batch
            for _, fut in waiting:
                fut.set_exception(self._error)
            return
        try:
            receipts = await self._send([call.message for call, _ in waiting])
        except Exception as exc:  # every call gets the error (each raises it)
            for _, fut in waiting:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), receipt in zip(waiting, receipts, strict=True):
            if not fut.done():
                fut.set_result(receipt)


async def publish_batch(
    calls: Sequence[PublishCall],
    through_chain: Callable[[PublishCall, Any], Awaitable[Any]],
    send: Callable[[list[Outgoing]], Awaitable[list[Receipt]]],
) -> list[Any]:
    """Run ``calls`` through the chain and publish them together; results in call order (the
    first error raised by a call is raised, after all of them ended)."""
    batch = Batch(len(calls), send)

    def chain(call: PublishCall) -> Awaitable[Any]:
        return through_chain(call, batch.endpoint)

    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(batch.run(chain, call)) for call in calls]
    try:
        await batch.flush()
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
