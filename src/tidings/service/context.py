"""Context: what a handler knows about the message it handles, and what it may do with it.

A handler asks for it by annotating a parameter with :class:`Context` (or naming it ``ctx``)::

    @svc.on("order.refunded", idempotent=True)
    async def refund(event: OrderRefunded, ctx: tidings.Context) -> None:
        ctx.transaction.execute(...)     # same transaction as the processed-id record
        await ctx.extend(60)             # still working: keep the lease 60 s more
        await ctx.publish("payment.refunded", Refunded(...))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import headers as h
from ..model import Message, Receipt

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from .app import Service
    from .handlers import Handler
    from .tracing import TraceContext
    from .transactions import Transaction


class Context:
    """One handling of one message (a new Context for every attempt).

    The attributes a handling may set start as class-level defaults (None, False) and
    ``state`` is made on first use: a Context is made for every message, and eleven
    attribute writes and a dict were a tenth of the framework's cost per message."""

    payload: Any = None  # the decoded payload, once decoded
    # idempotent handlers, and every handler of a service with an outbox: the open
    # transaction (on the outbox's database), and the outbox writer through it
    transaction: Connection | None = None
    outbox_transaction: Transaction | None = None
    trace: TraceContext | None = None  # set by TracingMiddleware
    duplicate: bool = False  # an idempotent handler skipped an already processed message
    _state: dict[str, Any] | None = None

    def __init__(self, service: Service, handler: Handler, message: Message, attempt: int) -> None:
        self.service = service
        self.handler = handler
        self.message = message
        self.attempt = attempt

    @property
    def state(self) -> dict[str, Any]:
        """Free room for middleware (a dict of this handling's own)."""
        state = self._state
        if state is None:
            state = self._state = {}
        return state

    @state.setter
    def state(self, value: dict[str, Any]) -> None:
        self._state = value

    @property
    def topic(self) -> str:
        return self.message.topic

    @property
    def group(self) -> str:
        return self.handler.group

    @property
    def key(self) -> str | None:
        return self.message.key

    @property
    def headers(self) -> dict[str, str]:
        return self.message.headers

    @property
    def delivery_count(self) -> int:
        """How many times this message was handed to a handler, this time included."""
        return self.attempt

    @property
    def message_id(self) -> str:
        """The producer message id when there is one, else the broker's message id: the id
        idempotent handlers record."""
        return self.message.msg_id or self.message.id

    @property
    def correlation_id(self) -> str | None:
        return self.message.headers.get(h.CORRELATION_ID)

    @property
    def message_type(self) -> str | None:
        return self.message.headers.get(h.MESSAGE_TYPE)

    async def extend(self, seconds: float | None = None) -> None:
        """Keep the lease ``seconds`` more (the handler's lease by default). Long handlers are
        extended automatically; call this to be explicit."""
        await self.message.extend(self.handler.lease if seconds is None else seconds)

    async def publish(self, topic: str, payload: Any, **options: Any) -> Receipt | str:
        """Publish an event from the handler (inherits the trace context). In a service with
        an outbox, the event is written to the outbox in ``ctx.transaction`` and goes out only
        if the handling commits; the msg_id is returned instead of a broker receipt."""
        if self.outbox_transaction is not None:
            return await self.outbox_transaction.publish(topic, payload, **options)
        return await self.service.publish(topic, payload, **options)

    async def publish_many(
        self, topic: str, payloads: Sequence[Any], **options: Any
    ) -> list[Receipt] | list[str]:
        """Publish several events from the handler in one round trip (outbox: msg_ids)."""
        if self.outbox_transaction is not None:
            return await self.outbox_transaction.publish_many(topic, payloads, **options)
        return await self.service.publish_many(topic, payloads, **options)

    async def send(self, topic: str, payload: Any, **options: Any) -> Receipt | str:
        """Send a command from the handler (outbox: written in ``ctx.transaction``)."""
        if self.outbox_transaction is not None:
            return await self.outbox_transaction.send(topic, payload, **options)
        return await self.service.send(topic, payload, **options)

    async def request(self, topic: str, payload: Any, **options: Any) -> Any:
        return await self.service.request(topic, payload, **options)

    def __repr__(self) -> str:
        return (
            f"Context(topic={self.topic!r}, group={self.group!r}, id={self.message.id!r}, "
            f"delivery_count={self.delivery_count})"
        )
