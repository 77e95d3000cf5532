"""One handling of one message: the middleware chain, the handler, and the message's fate.

``execute`` runs the handler watched by its consumer's :class:`Watchdog` (lease extension and
hard timeout) and returns the exception it ended with (None on success). ``settle`` turns that
into ack, nack with backoff, reject, or a reply, following the rules in
:mod:`tidings.service.outcomes`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import InvalidPayload, TidingsError, Timeout
from ..model import Message
from .context import Context
from .idempotency import DuplicateMessage
from .middleware import HandleNext, outcome_of
from .outcomes import Reject, Retry
from .watchdog import Watch, Watchdog

if TYPE_CHECKING:
    from .app import Service
    from .handlers import Handler

log = logging.getLogger("tidings.service")

SETTLE_HOOK = "tidings.settle"
"""``Context.state`` key of an ``async (settle, service, handler, message, handled)`` wrapper
around the settlement (the OpenTelemetry middleware's settle span); absent by default, when
settling costs one test of an empty dict."""


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Handled:
    """How one handling ended."""

    __slots__ = ("ctx", "error", "result")

    def __init__(self, ctx: Context, result: Any = None, error: BaseException | None = None):
        self.ctx = ctx
        self.result = result
        self.error = error

    @property
    def outcome(self) -> str:
        """ok, duplicate, invalid, reject, retry, cancelled or error."""
        return "duplicate" if self.ctx.duplicate else outcome_of(self.error)

    @property
    def failed(self) -> bool:
        """A failure that a retry may cure (not a rejection, an invalid payload or a duplicate)."""
        return self.error is not None and not isinstance(
            self.error, Reject | InvalidPayload | DuplicateMessage
        )


async def execute(
    service: Service,
    handler: Handler,
    chain: HandleNext,
    message: Message,
    attempt: int,
    watchdog: Watchdog,
) -> Handled:
    ctx = Context(service, handler, message, attempt)
    watch = watchdog.start(message)
    try:
        result = await chain(ctx)
    except BaseException as exc:
        return await failed(handler, ctx, watchdog, watch, exc)
    watchdog.end(watch, None)
    if watch.keeper is not None:
        await watch.keeper.stop()
    return Handled(ctx, result)


async def failed(
    handler: Handler, ctx: Context, watchdog: Watchdog, watch: Watch, exc: BaseException
) -> Handled:
    """How a handling that raised ``exc`` ended (a timeout of the watchdog's becomes Timeout);
    re-raises what is not an Exception (a cancellation from elsewhere)."""
    timed_out = watchdog.end(watch, exc)
    if watch.keeper is not None:
        await watch.keeper.stop()
    if timed_out:
        return Handled(
            ctx,
            error=Timeout(
                f"handler {handler.name} ran past its timeout of {handler.timeout}s and was "
                "cancelled; raise timeout= or make it faster"
            ),
        )
    if isinstance(exc, DuplicateMessage):
        ctx.duplicate = True
    if isinstance(exc, Exception):
        return Handled(ctx, error=exc)
    raise exc


async def _quietly(what: str, message: Message, coro: Any) -> None:
    try:
        await coro
    except TidingsError as exc:
        log.warning("could not %s %s on %s: %s", what, message.id, message.topic, exc)


def retry_delay(handler: Handler, error: BaseException, attempt: int) -> float:
    if isinstance(error, Retry) and error.delay is not None:
        return error.delay
    if handler.max_deliveries and attempt >= handler.max_deliveries:
        return 0.0  # the last delivery: let the broker dead-letter it now
    return handler.backoff.delay(attempt)


async def settle(service: Service, handler: Handler, message: Message, handled: Handled) -> None:
    """Ack, nack, reject or reply according to how the handling ended."""
    state = handled.ctx._state  # None unless something used ctx.state
    if state:
        hook = state.pop(SETTLE_HOOK, None)  # popped: it calls settle again
        if hook is not None:
            await hook(settle, service, handler, message, handled)
            return
    try:
        if handled.error is None and not handler.responder:  # the common case, inlined
            try:
                await message.ack()
            except TidingsError as exc:
                log.warning("could not ack %s on %s: %s", message.id, message.topic, exc)
        else:
            await _settle(service, handler, message, handled)
    finally:
        service.notify(handled)


def settle_operation(handler: Handler, handled: Handled) -> str:
    """What :func:`settle` does with the message: ack, nack or reject (as ``_settle``)."""
    error = handled.error
    if error is None or isinstance(error, DuplicateMessage):
        return "ack"
    if isinstance(error, Reject | InvalidPayload):
        return "reject"
    if handler.responder and not isinstance(error, Retry):
        return "ack"  # answered with the error, then acked
    return "nack"


async def _settle(service: Service, handler: Handler, message: Message, handled: Handled) -> None:
    error = handled.error
    if handler.responder:
        await settle_request(service, handler, message, handled)
    elif error is None or isinstance(error, DuplicateMessage):
        await _quietly("ack", message, message.ack())
    elif isinstance(error, Reject):
        await _quietly("reject", message, message.reject(error.reason))
    elif isinstance(error, InvalidPayload):
        await _quietly("reject", message, message.reject(str(error)))
    else:
        delay = retry_delay(handler, error, handled.ctx.attempt)
        await _quietly("nack", message, message.nack(delay, error_text(error)))


async def settle_request(
    service: Service, handler: Handler, message: Message, handled: Handled
) -> None:
    """Responders answer every request once: the result, or the error as a remote error.
    Failures are answered, not retried (a requester is waiting); ``Retry`` does retry."""
    error = handled.error
    if isinstance(error, Retry):
        delay = retry_delay(handler, error, handled.ctx.attempt)
        await _quietly("nack", message, message.nack(delay, error_text(error)))
        return
    try:
        if error is None:
            await service.send_reply(handler, message, handled.result)
        else:
            await service.send_error_reply(message, error)
    except Exception as exc:  # the reply did not go out: try the whole request again
        log.warning("could not reply to %s on %s: %s", message.id, message.topic, exc)
        delay = retry_delay(handler, exc, handled.ctx.attempt)
        await _quietly("nack", message, message.nack(delay, error_text(exc)))
        return
    if isinstance(error, Reject):
        await _quietly("reject", message, message.reject(error.reason))
    elif isinstance(error, InvalidPayload):
        await _quietly("reject", message, message.reject(str(error)))
    else:
        await _quietly("ack", message, message.ack())


async def nack_on_shutdown(message: Message) -> None:
    if not message.settled:
        await _quietly("nack", message, message.nack(0.0, "the service shut down mid-handling"))
