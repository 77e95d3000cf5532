"""Requester: the requesting side of request/reply and scatter-gather, for one client.

It creates the client's reply inbox on the first request, stamps each request with
``reply-to``, a fresh ``correlation-id`` and ``tidings-type: request`` (and a TTL equal to the
timeout, so a request nobody took in time is never processed), and waits for the replies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .. import headers as h
from ..errors import ConnectionLost, NoResponders, NotFound, RequestTimeout
from ..model import Message, Outgoing, Receipt
from ..transports.base import CAP_TTL, Transport
from .replies import ReplyInbox, is_error_reply, log, new_correlation_id, raise_for_error

Publish = Callable[[str, Outgoing], Awaitable[Receipt]]


class Requester:
    def __init__(self, transport: Transport, publish: Publish) -> None:
        self._transport = transport
        self._publish = publish
        self._inbox: ReplyInbox | None = None
        self._lock = asyncio.Lock()

    async def inbox(self) -> ReplyInbox:
        async with self._lock:
            if self._inbox is None or not self._inbox.alive:
                if self._inbox is not None:
                    await self._inbox.close()
                self._inbox = ReplyInbox(self._transport)
                await self._inbox.start()
            return self._inbox

    async def _send(
        self,
        topic: str,
        body: bytes,
        key: str | None,
        headers: dict[str, str] | None,
        inbox: ReplyInbox,
        correlation_id: str,
        timeout: float,
    ) -> None:
        out = dict(headers or {})
        out.setdefault(h.MESSAGE_TYPE, "request")
        out[h.REPLY_TO] = inbox.topic or ""
        out[h.CORRELATION_ID] = correlation_id
        ttl = timeout if CAP_TTL in self._transport.capabilities and timeout > 0 else None
        try:
            await self._publish(topic, Outgoing(body, key, out, None, ttl))
        except NoResponders:
            raise
        except NotFound as exc:  # the topic does not exist, so nothing can be serving it
            raise NoResponders(
                f"no responder is subscribed to {topic!r}: the topic does not exist; check "
                "the topic name and that the responding service is running and has declared "
                "it (`tidings services`, `tidings topic list`)"
            ) from exc

    async def request(
        self,
        topic: str,
        body: bytes,
        timeout: float,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Message:
        inbox = await self.inbox()
        correlation_id = new_correlation_id()
        async with inbox.expect(correlation_id) as replies:
            try:
                async with asyncio.timeout(timeout):
                    await self._send(topic, body, key, headers, inbox, correlation_id, timeout)
                    reply = await replies.get()
            except TimeoutError:
                raise RequestTimeout(
                    f"no reply to the request on {topic!r} within {timeout}s: "
                    "check that a responder is running and subscribed to that topic"
                ) from None
        if isinstance(reply, BaseException):
            raise ConnectionLost(f"the reply topic was lost while waiting: {reply}") from reply
        return raise_for_error(reply)

    async def scatter(
        self,
        topic: str,
        body: bytes,
        timeout: float,
        max_replies: int | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> list[Message]:
        inbox = await self.inbox()
        correlation_id = new_correlation_id()
        collected: list[Message] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with inbox.expect(correlation_id) as replies:
            try:
                await self._send(topic, body, key, headers, inbox, correlation_id, timeout)
            except NoResponders as exc:
                log.info("scatter on %s: no responders (%s)", topic, exc.message)
                return collected  # no responders: no replies (docs/client.md)
            while max_replies is None or len(collected) < max_replies:
                try:
                    reply = await asyncio.wait_for(replies.get(), deadline - loop.time())
                except TimeoutError:
                    break
                if isinstance(reply, BaseException):
                    if collected:
                        break
                    raise ConnectionLost(f"the reply topic was lost: {reply}") from reply
                if is_error_reply(reply):
                    log.warning(
                        "scatter on %s: a responder failed: %s: %s",
                        topic,
                        reply.headers.get(h.ERROR_TYPE),
                        reply.headers.get(h.ERROR),
                    )
                    continue
                collected.append(reply)
        return collected

    async def close(self) -> None:
        if self._inbox is not None:
            await self._inbox.close()
            self._inbox = None
