"""Reconnecting the amqp:// transport after a lost connection (docs/transports.md A12).

When the connection to RabbitMQ drops (the node restarts, ``rabbitmqctl
close_all_connections``, a network fault), RabbitMQ returns every un-acknowledged message the
connection's channels held to its queue, to be delivered again (the count going up). So:

- each subscription forgets what it had received (:meth:`AmqpSubscription.connection_lost`):
  settling one of those messages raises ``LeaseLost``, never an ack of a delivery tag on
  another channel; nothing settled before the drop comes back, except acks that had not
  reached the server (at least once, as everywhere);
- the loop below opens a new connection with backoff (0.1 s doubling to 5 s, jittered), and
  keeps trying until the transport is closed, as the ``nats://`` transport does;
- it then declares again what lived only as long as the connection (reply topics' exchanges
  and inboxes, ordered members' exclusive queues; durable topics and group queues survive a
  restart) and resumes every subscription on new channels, within ``RESTORE_TIMEOUT``, else
  it drops that connection and starts over;
- meanwhile every operation that needs the connection (publish, declarations, ...) waits for
  it up to the transport's ``reconnect_wait`` and then fails with ``TransportUnavailable``,
  which the client retries (``publish_retries``); a publish whose confirm was lost with the
  connection fails with ``ConnectionLost`` and is retried the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ...errors import Closed, TidingsError, TransportUnavailable
from ...resilience.backoff import Backoff
from .errors import translate

if TYPE_CHECKING:
    from .transport import AmqpTransport

log = logging.getLogger("tidings.transports.amqp")

BACKOFF = Backoff(0.1, 2.0, 5.0, jitter=0.5)
# at most this long to declare again and resume every subscription on a new connection, or it
# is dropped and tried again (a node still recovering its queues may leave a consume unanswered)
RESTORE_TIMEOUT = 30.0


class Reconnector:
    """The transport's link state: up, or down since when, and the loop that brings it up."""

    def __init__(self, transport: AmqpTransport, wait: float) -> None:
        self.t = transport
        self.wait = wait  # how long an operation waits for the connection to come back
        self.up = asyncio.Event()
        self.down_since: float | None = None
        self.closing = False
        self.reconnects = 0  # successful reconnects since connect()
        self.ever_connected = False
        self._task: asyncio.Task[None] | None = None

    def connected(self) -> None:
        self.ever_connected = True
        self.down_since = None
        self.up.set()

    def lost(self, exc: BaseException | None) -> None:
        """The connection closed without close(): tell the subscriptions, start the loop."""
        if self.closing or self.down_since is not None:
            return
        self.down_since = time.monotonic()
        self.up.clear()
        log.warning("amqp: lost the connection to %s (%s); reconnecting", self.t.where(), exc)
        for sub in list(self.t.subscriptions()):
            sub.connection_lost()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="tidings-amqp-reconnect"
            )

    async def ready(self) -> None:
        """Return once connected (restoring counts: the new connection is open);
        ``TransportUnavailable`` after ``wait`` seconds down."""
        if self.t.is_open() and not self.closing:
            return
        if self.closing:
            raise Closed("the amqp:// transport is closed")
        if self.down_since is None:
            if not self.ever_connected:
                raise Closed("the amqp:// transport is not connected: call connect() first")
            self.lost(None)  # closed, and its close callback has not run yet
        try:
            async with asyncio.timeout(self.wait):
                await self.up.wait()
        except TimeoutError:
            down = time.monotonic() - (self.down_since or time.monotonic())
            raise TransportUnavailable(
                f"RabbitMQ at {self.t.where()} has been unreachable for {down:.1f}s; the "
                "transport keeps reconnecting: retry later (the client retries publishes)"
            ) from None
        if self.closing:
            raise Closed("the amqp:// transport is closed")

    async def _run(self) -> None:
        delays = BACKOFF.sequence()
        while not self.closing:
            await asyncio.sleep(delays.next())
            if self.closing:
                return
            try:
                await self.t.open()
            except TidingsError as exc:
                log.debug("amqp: reconnecting to %s failed: %s", self.t.where(), exc)
                continue
            try:
                async with asyncio.timeout(RESTORE_TIMEOUT):
                    failed = await self._resume()
            except Exception as exc:  # dropped again, or RabbitMQ did not answer in time
                log.warning(
                    "amqp: resuming after a reconnect failed (%s); retrying",
                    str(exc) or type(exc).__name__,
                )
                await self.t.drop()
                for sub in list(self.t.subscriptions()):
                    sub.connection_lost()  # those resumed already: back to forgetting
                continue
            down = time.monotonic() - (self.down_since or time.monotonic())
            self.reconnects += 1
            self.connected()
            log.warning(
                "amqp: reconnected to %s after %.1fs (%d subscription(s) could not resume)",
                self.t.where(),
                down,
                failed,
            )
            return

    async def _resume(self) -> int:
        """Declare again and resume every subscription on the new connection; the number that
        could not resume (their queue was deleted meanwhile, ...). Raises when the connection
        dropped again meanwhile."""
        await self.t.restore()
        failed = 0
        for sub in list(self.t.subscriptions()):
            try:
                await sub.reconnected()
            except Exception as exc:
                if not self.t.is_open():
                    raise
                failed += 1  # this one alone
                sub.give_up(translate(exc, f"resume group {sub.spec.name!r}"))
        return failed

    def stop(self) -> None:
        self.closing = True
        self.up.set()  # waiters wake and see the transport closed
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
