"""Acknowledgements of one member, coalesced: one ``basic.ack(multiple=True)`` per channel and
flush for the longest run of settled deliveries, single acks for the rest.

A flush runs :data:`ACK_LINGER` after the first ack queued since the last one, so that the acks
of the deliveries that arrive meanwhile share its frame (aio-pika hands deliveries over one
task each, so one event-loop turn settles only a few); an ack the caller waits for
(``confirm_acks``) is flushed in the same loop turn.

AMQP 0-9-1 acks are not answered by the server, so an ack costs a frame and a socket write,
which dominated the consume path when sent one by one. ``multiple=True`` acks every delivery
up to a tag that the channel still has outstanding: it is used only over a run of deliveries
that are all being acked (the batcher mirrors the channel's outstanding deliveries, in tag
order), never over one the application still holds, one kept back or one returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from .codec import Incoming

log = logging.getLogger("tidings.transports.amqp")

ACK_LINGER = 0.002  # seconds a queued ack waits for others to share its basic.ack frame


class AckBatcher:
    def __init__(self) -> None:
        # channel -> delivery tag -> message, in delivery order (tags increase per channel)
        self._outstanding: dict[Any, dict[int, Incoming]] = {}
        self._pending: dict[Any, set[int]] = {}
        self._written: asyncio.Future[None] | None = None
        self._flush_at: asyncio.Handle | None = None
        self._flushes: set[asyncio.Future[None]] = set()
        self._lock = asyncio.Lock()

    def arrived(self, inc: Incoming) -> None:
        self._outstanding.setdefault(inc.raw.channel, {})[inc.raw.delivery_tag or 0] = inc

    def outstanding(self, inc: Incoming) -> bool:
        """Not settled yet (neither acked, queued for an ack, nor returned)."""
        tag = inc.raw.delivery_tag or 0
        channel = inc.raw.channel
        return tag in self._outstanding.get(channel, {}) and tag not in self._pending.get(
            channel, ()
        )

    def forget(self, inc: Incoming) -> None:
        """Settled otherwise (returned to the queue)."""
        out = self._outstanding.get(inc.raw.channel)
        if out is not None:
            out.pop(inc.raw.delivery_tag or 0, None)

    def ack(self, inc: Incoming, now: bool = False) -> asyncio.Future[None]:
        """Queue the ack; the future resolves once it is written (the next flush: at once
        with ``now``, else within :data:`ACK_LINGER`)."""
        self._pending.setdefault(inc.raw.channel, set()).add(inc.raw.delivery_tag or 0)
        loop = asyncio.get_running_loop()
        if self._written is None:
            self._written = loop.create_future()
            self._flush_at = loop.call_later(0.0 if now else ACK_LINGER, self._flush_soon)
        elif now and self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = loop.call_soon(self._flush_soon)
        return self._written

    def _flush_soon(self) -> None:
        self._flush_at = None
        task = asyncio.ensure_future(self.flush())
        self._flushes.add(task)  # kept until done (the loop holds tasks weakly)
        task.add_done_callback(self._flushes.discard)

    async def flush(self) -> None:
        """Write every queued ack (a channel that closed meanwhile: RabbitMQ returned them)."""
        async with self._lock:
            if self._flush_at is not None:  # flushed before its time (close)
                self._flush_at.cancel()
                self._flush_at = None
            written, self._written = self._written, None
            pending, self._pending = self._pending, {}
            failure: BaseException | None = None
            for channel, tags in pending.items():
                try:
                    await self._write(channel, tags)
                except Exception as exc:
                    failure = failure or exc
                    log.warning(
                        "amqp: %d acks were not written (they come again): %s", len(tags), exc
                    )
            if written is not None and not written.done():
                if failure is None:
                    written.set_result(None)
                else:
                    written.set_exception(failure)
                    written.exception()  # retrieved here: waiters may be gone

    async def _write(self, channel: Any, tags: set[int]) -> None:
        out = self._outstanding.get(channel, {})
        run_end, run = None, 0
        for tag in out:
            if tag not in tags:
                break
            run_end, run = tag, run + 1
        if run > 1:
            await channel.basic_ack(delivery_tag=run_end, multiple=True)
        for tag in list(out)[:run] if run > 1 else ():
            out.pop(tag, None)
            tags.discard(tag)
        for tag in sorted(tags):
            await channel.basic_ack(delivery_tag=tag)
            out.pop(tag, None)
        if not out:
            with contextlib.suppress(KeyError):
                del self._outstanding[channel]
