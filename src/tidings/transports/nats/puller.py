"""Pull requests on one JetStream consumer, sized by the member's free credit.

A :class:`Puller` keeps pull requests open (``batch`` = free credit, ``expires`` a few seconds)
on ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`` with a private reply subject per request,
hands every delivered message to ``sink`` and asks again when credit frees up or a request ends.
A member therefore never holds more than its prefetch: this is the credit flow control of the
built-in broker. Requests that end in silence (consumer gone, server failing over) are
re-issued; after two silent ones ``on_silence`` lets the subscription check the consumer.
Requests are short (one second) because a member that stops waits for its open requests to
end before it gives messages back (see :meth:`Puller.stop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from .naming import is_delivery

log = logging.getLogger("tidings.transports.nats")

PULL_EXPIRES = 1.0  # seconds a pull request stays open on the server
TICK = 0.25  # seconds between credit checks while nothing happens


class _Request:
    __slots__ = ("deadline", "remaining")

    def __init__(self, remaining: int, deadline: float) -> None:
        self.remaining = remaining
        self.deadline = deadline


class Puller:
    def __init__(
        self,
        nc: Client,
        stream: str,
        consumer: str,
        sink: Callable[[Msg], None],
        free: Callable[[], int],
        max_batch: int,
        on_silence: Callable[[], Awaitable[None]],
        api_prefix: str = "$JS.API",
    ) -> None:
        self.stream = stream
        self.consumer = consumer
        self.outstanding = 0  # messages asked for and not arrived yet
        self._nc = nc
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._sink = sink
        self._free = free
        self._max_batch = max_batch
        self._on_silence = on_silence
        self._inbox = nc.new_inbox()
        self._ids = itertools.count(1)
        self._requests: dict[str, _Request] = {}
        self._wake = asyncio.Event()
        self._silent = 0
        self._stopped = False
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox + ".*", cb=self._received)
        self._task = asyncio.create_task(self._run(), name=f"tidings-pull-{self.consumer}")

    async def stop(self, drain: bool = True) -> bool:
        """Stop asking. With ``drain``, first wait until the open requests have ended (JetStream
        2.9 may still hand a released message to a request whose subscriber is gone, where it
        would sit out a whole lease); messages arriving meanwhile still go to ``sink``. True
        when no request is left open (False: one may still catch a message for a while)."""
        self._stopped = True
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(1.0):
                    await asyncio.shield(self._task)
            except (TimeoutError, Exception):
                self._task.cancel()
        if drain and not self._nc.is_closed:
            deadline = time.monotonic() + PULL_EXPIRES + 0.5
            while self._requests and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                self._expire()
        drained = not self._requests
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        self._requests.clear()
        self.outstanding = 0
        return drained

    def wake(self) -> None:
        self._wake.set()

    def _want(self) -> int:
        return min(self._free() - self.outstanding, self._max_batch - self.outstanding)

    async def _run(self) -> None:
        while not self._stopped:
            self._expire()
            want = self._want()
            # Ask when there is room, but let small amounts gather while a request is open.
            if want > 0 and (not self._requests or want >= max(1, self._max_batch // 2)):
                await self._request(want)
                continue
            # Wake at least every TICK: leases running out free credit without any event.
            timeout = min((r.deadline for r in self._requests.values()), default=None)
            wait = TICK if timeout is None else min(TICK, max(0.01, timeout - time.monotonic()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            if self._silent >= 2:
                self._silent = 0
                try:
                    await self._on_silence()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.debug("consumer check failed: %s", exc)
                    await asyncio.sleep(0.5)

    async def _request(self, batch: int) -> None:
        token = str(next(self._ids))
        self._requests[token] = _Request(batch, time.monotonic() + PULL_EXPIRES + 1.0)
        self.outstanding += batch
        body = json.dumps({"batch": batch, "expires": int(PULL_EXPIRES * 1e9)}).encode()
        try:
            await self._nc.publish(self._next_subject, body, reply=f"{self._inbox}.{token}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # disconnected: the request is lost, try again shortly
            log.debug("pull request failed: %s", exc)
            self._end(token)
            await asyncio.sleep(0.2)

    def _end(self, token: str) -> None:
        req = self._requests.pop(token, None)
        if req is not None:
            self.outstanding -= req.remaining

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, r in self._requests.items() if r.deadline <= now]:
            self._end(token)
            self._silent += 1

    async def _received(self, msg: Msg) -> None:
        if is_delivery(msg.reply):
            # Deliveries keep their stream subject, so they cannot name their request; the
            # server serves waiting requests oldest first, and so does this count.
            self._silent = 0
            token = next(iter(self._requests), None)
            if token is not None:
                req = self._requests[token]
                req.remaining -= 1
                self.outstanding -= 1
                if req.remaining <= 0:
                    del self._requests[token]
            self._sink(msg)
        else:
            token = msg.subject.rsplit(".", 1)[1]
            status = (msg.headers or {}).get("Status")
            if status == "100":  # heartbeat
                return
            self._silent = 0
            self._end(token)
            if status == "409":
                desc = str((msg.headers or {}).get("Description", ""))
                if "Deleted" in desc:
                    self._silent = 2  # check the consumer now
        self._wake.set()
