"""One round trip for many messages that each pass through the publish middleware.

``Service.publish_many`` runs every message's call through the chain. The chain's endpoint does
not publish: it adds the (possibly changed) message to the batch and waits. Once every call has
either reached the endpoint or left the chain without it, the batch goes out in one
``publish_many`` of the client and each waiting endpoint gets its own receipt back, so
middleware that looks at the result (the logging middleware's "published" line) sees the same
thing as for a single publish. A middleware that returns without calling on leaves its message
out; one that raises before the batch went out stops the whole batch (all or none).

The calls run without a Task each (making, scheduling and gathering 500 Tasks was most of the
cost of a ``publish_many`` of 500): each call's coroutine is stepped here, in a copy of the
context as a Task of its own would be, up to the endpoint's wait; after the batch went out it
is stepped again to its end. A call that waits for something else on its way (a middleware
doing I/O) is handed to a Task at that point and goes on as before.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from typing import Any

from ..model import Outgoing, Receipt
from .hooks import Hooks
from .middleware import PublishCall


class Batch:
    def __init__(self, calls: int, send: Callable[[list[Outgoing]], Awaitable[list[Receipt]]]):
        self._calls = calls
        self._send = send
        self._settled = 0  # calls that reached the endpoint or left the chain
        self._waiting: list[tuple[PublishCall, asyncio.Future[Receipt]]] = []
        self._reached: set[int] = set()  # id() of the calls that reached the endpoint
        self._error: BaseException | None = None  # a call that raised before reaching it
        self._all_in: asyncio.Future[None] | None = None  # set once every call is in
        self._loop = asyncio.get_running_loop()
        self.parked: asyncio.Future[Receipt] | None = None  # the latest endpoint's wait

    async def endpoint(self, call: PublishCall) -> Receipt:
        fut: asyncio.Future[Receipt] = self._loop.create_future()
        self._waiting.append((call, fut))
        self._reached.add(id(call))
        self.parked = fut
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
        all_in = self._all_in
        if self._settled == self._calls and all_in is not None and not all_in.done():
            all_in.set_result(None)

    async def flush(self) -> None:
        """Wait for every call, then publish what reached the endpoint in one round trip."""
        if self._settled < self._calls:
            self._all_in = self._loop.create_future()
            await self._all_in
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


class _Call:
    """One call's coroutine, stepped by :func:`publish_batch` in its own context; ``task`` once
    it waits for anything but the batch."""

    __slots__ = ("context", "coro", "error", "parked", "result", "task")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.context = contextvars.copy_context()
        self.parked = False  # waiting in the endpoint for the batch
        self.task: asyncio.Task[Any] | None = None
        self.result: Any = None
        self.error: BaseException | None = None

    def step(self, batch: Batch, loop: asyncio.AbstractEventLoop) -> None:
        """Run the coroutine on until it ends, waits for the batch, or waits for other things
        (then a Task takes it over)."""
        self.parked = False
        batch.parked = None
        try:
            yielded = self.context.run(self.coro.send, None)
        except StopIteration as stop:
            self.result = stop.value
            return
        except BaseException as exc:
            self.error = exc
            return
        parked = batch.parked
        if parked is not None and yielded is parked:
            parked._asyncio_future_blocking = False  # as a Task does with what it waits for
            self.parked = True
            return
        self.task = loop.create_task(_go_on(self.coro, yielded), context=self.context)

    def close(self) -> None:
        """Cancelled while it waits for the batch: throw the cancellation in, as a Task's
        cancel would, and close it."""
        try:
            self.context.run(self.coro.throw, asyncio.CancelledError())
        except BaseException:
            pass
        self.coro.close()


class _GoOn:
    """The rest of a started coroutine, from the ``yielded`` future it is waiting for on."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self.coro = coro
        self.yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self.coro, self.yielded
        send, throw = coro.send, coro.throw
        while True:
            value: Any = None
            error: BaseException | None = None
            try:
                value = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation the task throws in
                error = exc
            try:
                yielded = send(value) if error is None else throw(error)
            except StopIteration as stop:
                return stop.value


async def _go_on(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    return await _GoOn(coro, yielded)


async def publish_batch(
    calls: Sequence[PublishCall],
    through_chain: Callable[[PublishCall, Any], Awaitable[Any]],
    send: Callable[[list[Outgoing]], Awaitable[list[Receipt]]],
) -> list[Any]:
    """Run ``calls`` through the chain and publish them together; results in call order (the
    first error raised by a call, in call order, is raised after all of them ended)."""
    batch = Batch(len(calls), send)
    loop = batch._loop

    def chain(call: PublishCall) -> Awaitable[Any]:
        return through_chain(call, batch.endpoint)

    runs = [_Call(batch.run(chain, call)) for call in calls]
    try:
        for run in runs:
            run.step(batch, loop)
        await batch.flush()
        for run in runs:
            if run.parked:  # its future has its receipt (or error) now
                run.step(batch, loop)
        tasks = [run.task for run in runs if run.task is not None]
        if tasks:
            await asyncio.wait(tasks)
    except BaseException:
        for run in runs:
            if run.task is not None:
                run.task.cancel()
            elif run.parked:
                run.close()
        raise
    results: list[Any] = []
    errors: list[BaseException] = []
    for run in runs:  # every task's outcome is read (none is left "never retrieved")
        task = run.task
        if task is not None:
            error = asyncio.CancelledError() if task.cancelled() else task.exception()
            if error is not None:
                errors.append(error)
            results.append(None if errors else task.result())
        elif run.error is not None:
            errors.append(run.error)
        else:
            results.append(run.result)
    if errors:
        raise errors[0]
    return results


async def publish_hooked_batch(
    calls: Sequence[PublishCall],
    hooks: Hooks,
    send: Callable[[list[Outgoing]], Awaitable[list[Receipt]]],
) -> list[Receipt]:
    """:func:`publish_batch` when every publish middleware gives hooks: each call's enters,
    one send, each call's leaves, without a coroutine per call. The same outcomes: a call whose
    enter raises stops the batch (the others leave with its error); a failed send reaches every
    call's leaves; the first error in call order is raised."""
    entered: list[tuple[PublishCall, list[Any] | None, BaseException | None]] = []
    error: BaseException | None = None  # the first refusal stops the batch
    for call in calls:
        try:
            entered.append((call, hooks.enter(call), None))
        except BaseException as exc:  # its own hooks left already
            entered.append((call, None, exc))
            error = error or exc
    receipts: list[Receipt] = []
    if error is None:
        try:
            receipts = await send([call.message for call, _, _ in entered])
        except BaseException as exc:
            error = exc
    first: BaseException | None = None
    for call, tokens, refusal in entered:
        failed = refusal if tokens is None else hooks.leave(call, tokens, error)
        first = first or failed
    if first is not None:
        raise first
    return receipts
