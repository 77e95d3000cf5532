"""Request/reply, written once for every transport.

A requester owns one temporary reply topic (created lazily with
``Transport.create_reply_topic``; the transport's engine names it: on the tidings broker it is
``_reply.<tag>.<random>``, and only a connection that was delivered a request naming it may
publish a reply there) and reads it through an auto-acknowledged group. Each request
carries ``reply-to`` (that topic) and a fresh ``correlation-id``; :class:`ReplyInbox` routes
every reply to the waiter registered under its correlation id and drops replies nobody waits
for any more (late replies after a timeout). A reply with ``tidings-error-type`` /
``tidings-error`` headers is a remote failure and becomes :class:`RemoteError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from .. import headers as h
from ..errors import BadRequest, Closed, RemoteError
from ..model import GroupSpec, Message, Outgoing
from ..transports.base import CAP_AUTO_ACK, Transport, TransportSubscription

log = logging.getLogger("tidings.client")

INBOX_GROUP = "inbox"


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def is_error_reply(message: Message) -> bool:
    return h.ERROR_TYPE in message.headers or h.ERROR in message.headers


def raise_for_error(message: Message) -> Message:
    """Return ``message``, or raise :class:`RemoteError` if it is an error reply."""
    if is_error_reply(message):
        raise RemoteError(
            message.headers.get(h.ERROR) or "the remote handler failed",
            message.headers.get(h.ERROR_TYPE, "Exception"),
        )
    return message


def reply_message(
    request: Message, body: bytes, headers: dict[str, str] | None = None
) -> tuple[str, Outgoing]:
    """The topic and message that answer ``request``."""
    reply_to = request.headers.get(h.REPLY_TO)
    if not reply_to:
        raise BadRequest(
            f"message {request.id} on {request.topic!r} has no {h.REPLY_TO!r} header: "
            "it is not a request, so there is nobody to reply to"
        )
    out = dict(headers or {})
    out.setdefault(h.MESSAGE_TYPE, "reply")
    correlation_id = request.headers.get(h.CORRELATION_ID)
    if correlation_id is not None:
        out[h.CORRELATION_ID] = correlation_id
    return reply_to, Outgoing(body, headers=out)


def error_headers(error: BaseException | str, error_type: str | None = None) -> dict[str, str]:
    """Headers that make a reply carry a remote error."""
    if isinstance(error, BaseException):
        return {
            h.ERROR_TYPE: error_type or type(error).__name__,
            h.ERROR: str(error) or type(error).__name__,
        }
    return {h.ERROR_TYPE: error_type or "Exception", h.ERROR: error}


class ReplyInbox:
    """The requester's reply topic, its reader task and the waiters keyed by correlation id."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self.topic: str | None = None
        self._sub: TransportSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiters: dict[str, asyncio.Queue[Message | BaseException]] = {}
        self._failure: BaseException | None = None

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self.topic = await self._transport.create_reply_topic()
        auto_ack = CAP_AUTO_ACK in self._transport.capabilities
        spec = GroupSpec(topic=self.topic, name=INBOX_GROUP, auto_ack=auto_ack, start="earliest")
        self._sub = await self._transport.subscribe(spec, prefetch=1000)
        self._task = asyncio.create_task(self._pump(auto_ack), name=f"tidings-inbox-{self.topic}")

    @contextlib.asynccontextmanager
    async def expect(
        self, correlation_id: str
    ) -> AsyncIterator[asyncio.Queue[Message | BaseException]]:
        """Register a waiter for replies carrying ``correlation_id`` while the block runs."""
        queue: asyncio.Queue[Message | BaseException] = asyncio.Queue()
        self._waiters[correlation_id] = queue
        try:
            yield queue
        finally:
            self._waiters.pop(correlation_id, None)

    async def _pump(self, auto_ack: bool) -> None:
        assert self._sub is not None
        try:
            while True:
                message = await self._sub.next()
                if message is None:
                    continue
                if not auto_ack:
                    await message.ack()
                waiter = self._waiters.get(message.headers.get(h.CORRELATION_ID, ""))
                if waiter is None:
                    log.debug("dropping a late or unknown reply %s on %s", message.id, self.topic)
                else:
                    waiter.put_nowait(message)
        except Closed:
            pass
        except Exception as exc:  # the connection failed: wake every waiter with the cause
            log.warning("reply inbox %s stopped: %s", self.topic, exc)
            self._failure = exc
            for waiter in self._waiters.values():
                waiter.put_nowait(exc)

    async def close(self) -> None:
        # close the subscription first: the reader then ends with Closed even if a
        # cancellation were lost in a transport's asyncio.wait_for (Python 3.11)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.topic is not None:
            with contextlib.suppress(Exception):
                await self._transport.delete_topic(self.topic)
