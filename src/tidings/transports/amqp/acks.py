"""Acknowledgements of one member, coalesced: one ``basic.ack(multiple=True)`` per channel and
event-loop turn for the longest run of settled deliveries, single acks for the rest.

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


class AckBatcher:
    def __init__(self) -> None:
        # channel -> delivery tag -> message, in delivery order (tags increase per channel)
        self._outstanding: dict[Any, dict[int, Incoming]] = {}
        self._pending: dict[Any, set[int]] = {}
        self._written: asyncio.Future[None] | None = None
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

    def ack(self, inc: Incoming) -> asyncio.Future[None]:
        """Queue the ack; the future resolves once it is written (this loop turn's flush)."""
        self._pending.setdefault(inc.raw.channel, set()).add(inc.raw.delivery_tag or 0)
        if self._written is None:
            loop = asyncio.get_running_loop()
            self._written = loop.create_future()
            loop.call_soon(lambda: asyncio.ensure_future(self.flush()))
        return self._written

    async def flush(self) -> None:
        """Write every queued ack (a channel that closed meanwhile: RabbitMQ returned them)."""
        async with self._lock:
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
