"""ServiceKit: run services on a private ``memory://`` broker and wait for what they do.

    async with ServiceKit(payment, inventory, clock=True) as kit:
        await kit.publish("order.refunded", OrderRefunded(order_id="o-1"))
        [done] = await kit.handled("order.refunded")          # no sleeps: waits for the event
        assert done.outcome == "ok"
        await kit.advance(30)                                 # fast-forward leases and delays
        [dead] = await kit.dead_letters("order.refunded", "payment")

Each kit has its own broker (``memory://kit-<random>``), so tests never see each other's
messages. ``url=`` runs the same test on a real engine instead (``tidings://``, ``nats://``,
``redis://``, ``amqp://``: an integration test of the code the unit test covered); there the
topics are the engine's, shared with whatever else uses it, so give them names of the test's
own. With ``clock=True`` the broker runs on a :class:`ManualClock` that only
:meth:`advance` moves: lease expiry, nack delays, TTL and delayed messages happen exactly when
the test says. (Handler-side timers, such as lease auto-extension and hard timeouts, use real
time.)
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from .. import headers as h
from ..client import AsyncClient
from ..clock import ManualClock
from ..errors import BadRequest, Timeout
from ..model import Message, Receipt
from ..service import Service
from ..service.execution import Handled
from ..transports import memory

DEFAULT_TIMEOUT = 5.0


class ServiceKit:
    """Starts ``services`` on one private in-memory broker (or on the engine at ``url``);
    records every settled handling."""

    def __init__(
        self,
        *services: Service,
        clock: bool | ManualClock = False,
        name: str | None = None,
        url: str | None = None,
    ) -> None:
        if url is not None and (clock or name is not None):
            raise BadRequest(
                "ServiceKit(url=...) runs on a real engine, whose clock is the real one: "
                "clock= and name= are for the private memory:// broker; drop them or the url"
            )
        self.services = list(services)
        if clock is True:
            self.clock: ManualClock | None = ManualClock()
        else:
            self.clock = clock or None
        self.url = url or f"memory://{name or 'kit-' + secrets.token_hex(6)}"
        self.records: list[Handled] = []
        self._changed = asyncio.Condition()
        self._saved: list[tuple[Service, str | None, dict[str, Any]]] = []
        self.driver = Service("tidings-testkit", default_middleware=False)
        self.client: AsyncClient | None = None

    def _options(self) -> dict[str, Any]:
        return {"clock": self.clock} if self.clock is not None else {}

    async def __aenter__(self) -> ServiceKit:
        for svc in [self.driver, *self.services]:
            self._saved.append((svc, svc.url, svc.client_options))
            svc.url = self.url
            svc.client_options = {**svc.client_options, **self._options()}
            svc.observe(self._record)
        self.client = AsyncClient(self.url, **self._options())
        await self.client.connect()
        try:
            for svc in [self.driver, *self.services]:
                await svc.start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for svc in reversed([self.driver, *self.services]):
            await svc.stop(grace=1.0)
        for svc, url, options in self._saved:
            svc.url, svc.client_options = url, options
            if self._record in svc._observers:
                svc._observers.remove(self._record)
        self._saved.clear()
        if self.client is not None:
            await self.client.close()
        # The kit's broker lives until its event loop closes (one loop per test with
        # pytest-asyncio); its name is unique, so no other test can see it.

    # recording and waiting
    def _record(self, handled: Handled) -> None:
        self.records.append(handled)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(
        self, predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT, what: str = ""
    ) -> Any:
        """Wait until ``predicate()`` is truthy (checked after every handling and every
        ``timeout / 50`` seconds); returns its value. Raises tidings.errors.Timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while not (value := predicate()):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise Timeout(f"gave up after {timeout}s waiting for {what or predicate}")
                try:
                    await asyncio.wait_for(self._changed.wait(), min(remaining, timeout / 50))
                except TimeoutError:
                    pass
        return value

    def matching(
        self, topic: str | None = None, *, handler: str | None = None, outcome: str | None = None
    ) -> list[Handled]:
        return [
            r
            for r in self.records
            if (topic is None or r.ctx.topic == topic)
            and (handler is None or r.ctx.handler.name == handler)
            and (outcome is None or r.outcome == outcome)
        ]

    async def handled(
        self,
        topic: str | None = None,
        *,
        handler: str | None = None,
        outcome: str | None = None,
        count: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[Handled]:
        """Wait for ``count`` settled handlings matching the filters; returns them (in order).
        Each has ``.outcome``, ``.error``, ``.result`` and ``.ctx`` (payload, message, ...)."""
        what = f"{count} handling(s) of topic={topic} handler={handler} outcome={outcome}"
        await self.wait_until(
            lambda: len(self.matching(topic, handler=handler, outcome=outcome)) >= count,
            timeout,
            what,
        )
        return self.matching(topic, handler=handler, outcome=outcome)[:count]

    # acting
    async def publish(self, topic: str, payload: Any, **options: Any) -> Receipt:
        """Publish as a service would (typed payload, JSON, Snowflake msg_id)."""
        return await self.driver.publish(topic, payload, **options)

    async def publish_many(
        self, topic: str, payloads: Sequence[Any], **options: Any
    ) -> list[Receipt]:
        return await self.driver.publish_many(topic, payloads, **options)

    async def send(self, topic: str, payload: Any, **options: Any) -> Receipt:
        return await self.driver.send(topic, payload, **options)

    async def request(self, topic: str, payload: Any, **options: Any) -> Any:
        return await self.driver.request(topic, payload, **options)

    async def scatter(self, topic: str, payload: Any, **options: Any) -> list[Any]:
        return await self.driver.scatter(topic, payload, **options)

    async def advance(self, seconds: float) -> None:
        """Move the fake clock ``seconds`` forward and run what became due (lease expiry,
        delays, nack backoff, TTL). Needs ``clock=True``."""
        if self.clock is None:
            if not self.url.startswith("memory://"):
                raise RuntimeError(
                    f"advance() moves the private memory:// broker's fake clock; on {self.url} "
                    "time is real: wait for the event (kit.handled, kit.wait_until) instead"
                )
            raise RuntimeError("advance() needs a fake clock: ServiceKit(..., clock=True)")
        self.clock.advance(seconds)
        runtime = await memory.memory_runtime(self.url[9:])
        runtime.broker.tick()
        runtime.poke()
        await asyncio.sleep(0)

    async def dead_letters(
        self, topic: str, group: str, *, count: int = 1, timeout: float = DEFAULT_TIMEOUT
    ) -> list[Message]:
        """Wait for ``count`` messages on the dead-letter topic of ``group`` on ``topic`` and
        return them (acknowledged; their ``tidings-dlq-*`` headers say why and from where)."""
        assert self.client is not None
        dlq = h.dead_letter_topic(topic, group)
        await self.client.create_topic(dlq, exist_ok=True)
        sub = await self.client.subscribe(dlq, "tidings-testkit", prefetch=max(count, 1))
        found: list[Message] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while len(found) < count:
                message = await sub.next(max(0.0, deadline - loop.time()))
                if message is None:
                    raise Timeout(
                        f"gave up after {timeout}s waiting for {count} dead letter(s) on {dlq}; "
                        f"got {len(found)}"
                    )
                await message.ack()
                found.append(message)
        finally:
            await sub.close()
        return found


def payloads(records: Sequence[Handled]) -> list[Any]:
    """The decoded payloads of ``records``."""
    return [r.ctx.payload for r in records]
