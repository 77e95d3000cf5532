"""Consumer: one handler's group membership, fetch loop, concurrency and shutdown.

Shared handlers run up to ``concurrency`` messages at once, in any order. Ordered handlers
(``mode="ordered"``) join an ordered group and run messages through :class:`KeyLanes`: the same
key strictly in order, different keys in parallel. A failing message of an ordered handler is
retried in place (its key waits, its lease is kept) so later messages of the key never overtake
it; after max deliveries attempts it is rejected to the dead-letter topic with the error.

The fetch loop takes as many buffered messages as there are free slots in one ``next_batch``
and waits for a slot only when none is free; one :class:`Watchdog` times every handling's lease
extension and hard timeout. A semaphore round, a ``next()`` and a done-callback per message,
and a timer per handling, were most of the framework's cost per message.

Shared handlers run on a pool of at most ``concurrency`` worker tasks, not a Task per message
(creating, registering and scheduling one was a third of the consumer's CPU per message). A
worker takes the next fetched message; before it runs one, it wakes one more worker if messages
are waiting, so a handling that suspends never holds the others up, while handlings that return
without suspending run back to back in one worker. Each handling runs in a copy of the worker's
context, as it did in a task of its own: context variables a handler sets do not leak into the
next message. Its first step runs in the copy straight from the worker; only a handling that
suspends is driven on by :class:`_InContext`. A worker ends after a cancellation (shutdown,
or a handler cancelling its own task); another is started when messages wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any

from ..client import Subscription
from ..errors import Closed, MemberStuck, TidingsError
from ..model import Message
from ..transports.base import CAP_KEY_ORDERED
from .context import Context
from .execution import Handled, error_text, execute, failed, nack_on_shutdown, retry_delay, settle
from .keylanes import KeyLanes
from .leases import LeaseKeeper
from .middleware import HandlePlan
from .watchdog import Watchdog

if TYPE_CHECKING:
    from .app import Service
    from .handlers import Handler

log = logging.getLogger("tidings.service")


def key_ordered(handler: Handler, capabilities: frozenset[str]) -> bool:
    """The handler's ``key_ordered`` for an engine with ``capabilities`` ("if-supported":
    only where the engine has it)."""
    if handler.key_ordered == "if-supported":
        return CAP_KEY_ORDERED in capabilities
    return bool(handler.key_ordered)


class _InContext:
    """``await _InContext(coro, run, yielded)``: go on running ``coro``, started with
    ``run(coro.send, None)`` (``run`` of a copy of the current context, like a task of its own
    would) until it yielded ``yielded``, in the awaiting task (no Task, no loop round). Every
    later step runs in that copy too; what it yields (the futures it waits for) and what the
    task throws into it (cancellation) pass through unchanged. A handling that never suspends
    is run by its first ``run`` alone and needs none of this."""

    __slots__ = ("coro", "run", "yielded")

    def __init__(self, coro: Coroutine[Any, Any, None], run: Any, yielded: Any) -> None:
        self.coro = coro
        self.run = run
        self.yielded = yielded

    def __await__(self) -> Generator[Any, Any, None]:
        coro, run, yielded = self.coro, self.run, self.yielded
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
                yielded = run(send, value) if error is None else run(throw, error)
            except StopIteration:
                return


class Consumer:
    def __init__(self, service: Service, handler: Handler, chain: HandlePlan) -> None:
        self.service = service
        self.handler = handler
        self.chain = chain
        self.sub: Subscription | None = None
        self.ordered = handler.mode == "ordered"
        self._free = handler.concurrency  # slots: messages that may start now
        self._slot_freed: asyncio.Future[None] | None = None  # the fetch loop waits for a slot
        self._queue: deque[Message] = deque()  # fetched, not started yet (shared handlers)
        self._workers: set[asyncio.Task[None]] = set()
        self._idle: list[asyncio.Future[None]] = []  # a waiting worker's wake-up
        self._waking = False  # a worker was woken (or started) and has not run yet
        self._watchdog = Watchdog(handler.lease, handler.timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lanes = KeyLanes(self._run_ordered)
        self._fetcher: asyncio.Task[None] | None = None
        self._left = False  # the subscription is closed: its messages went back to the group
        self._stopping = False

    @property
    def in_flight(self) -> int:
        """Messages taken from the group and not settled yet."""
        return self.handler.concurrency - self._free

    async def start(self) -> None:
        h = self.handler
        client = self.service.client
        assert client is not None, "the service connects before it starts its consumers"
        self.sub = await client.subscribe(
            h.topic,
            h.group,
            mode=h.mode,
            lease=h.lease,
            max_deliveries=h.max_deliveries,
            prefetch=h.concurrency,
            start=h.start,
            key_ordered=key_ordered(h, client.capabilities),
            in_flight_per_partition=h.concurrency if self.ordered else 1,
            prefetch_bytes=h.prefetch_bytes,
        )
        self._loop = asyncio.get_running_loop()
        self._fetcher = asyncio.create_task(self._fetch(), name=f"tidings-fetch-{h.name}")

    async def _fetch(self) -> None:
        # ``stopping`` is checked after every await: on Python 3.11 a cancellation that lands
        # just as a message arrives can be swallowed by asyncio.wait_for inside a transport.
        assert self.sub is not None
        sub = self.sub
        loop = asyncio.get_running_loop()  # asking for it again (per message) costs a getpid()
        while not self._stopping:
            if self._free <= 0:
                self._slot_freed = loop.create_future()
                try:
                    await self._slot_freed
                finally:
                    self._slot_freed = None
                continue
            try:
                batch = await sub.next_batch(self._free)
            except Closed:
                return
            except MemberStuck as exc:  # its handlers stopped settling: the broker closed it
                log.error("%s no longer receives messages: %s", self.handler.name, exc)
                return
            except Exception as exc:  # the transport hiccupped; it reconnects on its own
                log.warning("fetching for %s failed: %s; retrying", self.handler.name, exc)
                await asyncio.sleep(0.5)
                continue
            if not batch or self._stopping:  # messages taken now go back on leave
                continue
            self._free -= len(batch)
            if self.ordered:
                for message in batch:
                    self._lanes.submit(message)
            else:
                self._queue.extend(batch)
                self._wake()

    def _wake(self) -> None:
        """Have one more worker take waiting messages (unless one is about to)."""
        if self._waking or not self._queue:
            return
        if self._idle:
            self._waking = True
            self._idle.pop().set_result(None)
        elif len(self._workers) < self.handler.concurrency:
            self._waking = True
            assert self._loop is not None
            self._workers.add(self._loop.create_task(self._work()))

    async def _work(self) -> None:
        loop = self._loop
        assert loop is not None
        queue = self._queue
        task = asyncio.current_task(loop)
        assert task is not None
        try:
            self._waking = False
            while True:
                if not queue:
                    if self._stopping:
                        return
                    wake = loop.create_future()
                    self._idle.append(wake)
                    try:
                        await wake
                    finally:
                        self._waking = False
                        if not wake.done():  # cancelled while idle
                            self._idle.remove(wake)
                    continue
                message = queue.popleft()
                if queue:
                    self._wake()  # if this handling suspends, another worker goes on
                coro = self._run_shared(message, task)
                run = contextvars.copy_context().run  # its own context, as a task's
                try:
                    yielded = run(coro.send, None)
                except StopIteration:  # done without suspending: the common case
                    continue
                await _InContext(coro, run, yielded)
        finally:
            self._workers.discard(task)
            if not self._stopping:
                self._wake()  # a worker ended on a cancellation: messages may be waiting

    def _release(self) -> None:
        self._free += 1
        waiter = self._slot_freed
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _run_shared(self, message: Message, task: asyncio.Task[Any]) -> None:
        try:
            # execute() inlined (a coroutine less per message); failures go through its
            # failed(), as there
            handler, watchdog, plan = self.handler, self._watchdog, self.chain
            ctx = Context(self.service, handler, message, message.delivery_count)
            watch = watchdog.start(message, task)
            error: BaseException | None = None
            result = None
            try:  # the plan's hooks inline: no coroutine per built-in middleware
                tokens = plan.enter(ctx)
                try:
                    result = await plan.rest(ctx)
                except BaseException as exc:
                    error = exc
                if tokens:
                    error = plan.leave(ctx, tokens, error)
            except BaseException as exc:  # an enter hook raised
                error = exc
            if error is not None:
                handled = await failed(handler, ctx, watchdog, watch, error)
            else:
                watchdog.end(watch, None)
                if watch.keeper is not None:
                    await watch.keeper.stop()
                if not ctx._state and not handler.responder:
                    # settle()'s common case inlined: a coroutine less per message, and no
                    # Handled unless an observer is told of it
                    try:
                        await message.ack()
                    except TidingsError as exc:
                        log.warning("could not ack %s on %s: %s", message.id, message.topic, exc)
                    finally:
                        if self.service._observers:
                            self.service.notify(Handled(ctx, result))
                    return
                handled = Handled(ctx, result)
            await settle(self.service, self.handler, message, handled)
        except asyncio.CancelledError:
            if not self._left:
                await asyncio.shield(nack_on_shutdown(message))
            raise
        except Exception:  # a bug in the framework: never lose the fetch loop over it
            log.exception("handling %s on %s failed unexpectedly", message.id, message.topic)
        finally:
            self._release()

    async def _run_ordered(self, message: Message) -> None:
        try:
            await self._retry_in_place(message)
        except asyncio.CancelledError:
            if not self._left:
                await asyncio.shield(nack_on_shutdown(message))
            raise
        except Exception:
            log.exception("handling %s on %s failed unexpectedly", message.id, message.topic)
        finally:
            self._release()

    async def _retry_in_place(self, message: Message) -> None:
        h = self.handler
        attempt = message.delivery_count
        while True:
            handled: Handled = await execute(
                self.service, h, self.chain, message, attempt, self._watchdog
            )
            if not handled.failed or h.responder:
                await settle(self.service, h, message, handled)
                return
            assert handled.error is not None
            self.service.notify(handled)
            if h.max_deliveries and attempt >= h.max_deliveries:
                reason = f"failed {attempt} times; last error: {error_text(handled.error)}"
                with contextlib.suppress(Exception):
                    await message.reject(reason)
                return
            if self._lanes.stopping:
                await nack_on_shutdown(message)
                return
            async with LeaseKeeper(message, h.lease):
                await asyncio.sleep(retry_delay(h, handled.error, attempt))
            attempt += 1

    async def stop(self, deadline: float) -> None:
        """Stop fetching, let in-flight handlings finish until ``deadline`` (loop time), then
        leave the group (which returns unfinished messages to it at once) and cancel the rest."""
        loop = asyncio.get_running_loop()
        self._stopping = True
        if self._fetcher is not None:
            self._fetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetcher
        self._lanes.stopping = True
        for wake in self._idle:  # idle workers end; busy ones finish the queue first
            if not wake.done():
                wake.set_result(None)
        self._idle.clear()
        running = self._workers | self._lanes.tasks
        if running:
            _, pending = await asyncio.wait(running, timeout=max(0.0, deadline - loop.time()))
            if pending:
                await self._leave()
                for task in pending:
                    task.cancel()
                log.warning(
                    "%s: %d handlers still running after the grace period were cancelled",
                    self.handler.name,
                    len(pending),
                )
                await asyncio.gather(*pending, return_exceptions=True)
                self._workers.difference_update(pending)  # a task cancelled before it started
                self._queue.clear()  # not started: they went back to the group on leave
        self._watchdog.close()
        await self._leave()

    async def _leave(self) -> None:
        if self.sub is not None and not self._left:
            self._left = True
            with contextlib.suppress(Exception):
                await self.sub.close()
