"""Middleware: a chain of wrappers around every publish and every handled message.

A middleware subclasses :class:`Middleware` and overrides ``publish``, ``handle`` or both;
each receives the call and ``call_next`` and must return what ``call_next`` returns (or raise).
The first middleware in ``Service(middleware=[...])`` is the outermost::

    class Timing(tidings.service.Middleware):
        async def handle(self, ctx, call_next):
            started = time.perf_counter()
            try:
                return await call_next(ctx)
            finally:
                print(ctx.topic, time.perf_counter() - started)

``publish`` sees every outgoing message of the service (events, commands, requests, replies)
as a :class:`PublishCall` whose ``message`` (a :class:`tidings.Outgoing`) may be changed, e.g.
to add headers. ``handle`` sees a :class:`tidings.Context` before the payload is decoded; an
exception leaving the chain decides the message's fate (see :mod:`tidings.service.outcomes`).
Built in: :class:`TracingMiddleware` (W3C ``traceparent``; OpenTelemetry spans instead with
``tracing="otel"``, see :mod:`.otel`), :class:`LoggingMiddleware` (message and correlation ids)
and :class:`MetricsMiddleware` (hooks for counters and timings).

A service builds its publish chain once (:func:`publish_chain` with :func:`call_endpoint` at
the end; each call carries its own endpoint) and again only when its middleware list changes;
middleware that does not override ``publish`` is left out of it. The handle chain is built once
per handler, likewise without pass-throughs, and its steps return the next middleware's
coroutine rather than wrapping it in one of their own. ``LoggingMiddleware`` does no work for
a record its logger would drop. Building the chain for every publish was a third of the
framework's publish CPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from logging import WARNING
from typing import TYPE_CHECKING, Any

from .. import headers as h
from ..errors import BadRequest, InvalidPayload
from ..model import Outgoing
from .hooks import HookPair, Hooks
from .outcomes import Reject, Retry
from .tracing import TraceContext, current_trace, outgoing_traceparent, span_of
from .watchdog import is_timeout_cancel

if TYPE_CHECKING:
    from .context import Context

PublishNext = Callable[["PublishCall"], Awaitable[Any]]
HandleNext = Callable[["Context"], Awaitable[Any]]

BATCH_SIZE = "tidings.batch_size"
"""``PublishCall.state`` key: the call is one of a ``publish_many`` of that many messages."""
TRACING_MODES = ("w3c", "otel")


@dataclass
class PublishCall:
    """One outgoing message on its way through the chain (a dataclass: middleware may use
    ``dataclasses.replace`` on it, or set attributes of its own)."""

    topic: str
    message: Outgoing
    kind: str  # event | command | document | request | reply
    payload: Any = None  # the value before encoding
    state: dict[str, Any] = field(default_factory=dict)
    endpoint: PublishNext | None = field(default=None, repr=False, compare=False)
    """Where the chain ends for this call (the service sets it; see :func:`call_endpoint`)."""


class Middleware:
    """Base class: both hooks pass through unchanged."""

    async def publish(self, call: PublishCall, call_next: PublishNext) -> Any:
        return await call_next(call)

    async def handle(self, ctx: Context, call_next: HandleNext) -> Any:
        return await call_next(ctx)

    # How the chains call this middleware (built once per chain): a step that calls
    # ``publish``/``handle``. A built-in middleware returns a cheaper step that does the same
    # thing without a coroutine of its own, only when its hook is not overridden.
    def _publish_step(self, nxt: PublishNext) -> PublishNext:
        return _PublishStep(self.publish, nxt)

    def _handle_step(self, nxt: HandleNext) -> HandleNext:
        return _HandleStep(self.handle, nxt)

    def _handle_hooks(self) -> HookPair | None:
        """``(enter, leave)`` doing what ``handle`` does around ``call_next`` as plain calls
        (:mod:`.hooks`); built-in middleware gives them when ``handle`` is not overridden.
        None: the chain calls ``handle``."""
        return None

    def _publish_hooks(self) -> HookPair | None:
        """The same for ``publish``."""
        return None


def publish_chain(middlewares: Sequence[Middleware], endpoint: PublishNext) -> PublishNext:
    call = endpoint
    for mw in reversed(middlewares):
        if type(mw).publish is not Middleware.publish:  # a pass-through adds nothing
            call = mw._publish_step(call)
    return call


def call_endpoint(call: PublishCall) -> Awaitable[Any]:
    """The end of a chain built once: the endpoint the call carries."""
    assert call.endpoint is not None
    return call.endpoint(call)


def handle_chain(middlewares: Sequence[Middleware], endpoint: HandleNext) -> HandlePlan:
    """The handle chain: the outermost middlewares that give hooks run as plain calls around
    the chain of the others (see :class:`HandlePlan`)."""
    active = [mw for mw in middlewares if type(mw).handle is not Middleware.handle]
    hooks: list[HookPair] = []
    for mw in active:
        pair = mw._handle_hooks()
        if pair is None:
            break
        hooks.append(pair)
    call = endpoint
    for mw in reversed(active[len(hooks) :]):
        call = mw._handle_step(call)
    return HandlePlan(tuple(hooks), call)


class HandlePlan(Hooks):
    """A handle chain: hooks (outermost first) around ``rest``, the chain of the other
    middlewares and the endpoint. ``await plan(ctx)`` runs it all; the consumer runs the hooks
    inline (``enter``, ``await rest(ctx)``, ``leave``)."""

    __slots__ = ("rest",)

    def __init__(self, hooks: Sequence[HookPair], rest: HandleNext) -> None:
        super().__init__(hooks)
        self.rest = rest

    def __call__(self, ctx: Context) -> Awaitable[Any]:
        return self.around(ctx, self.rest) if self.hooks else self.rest(ctx)


def publish_hooks(middlewares: Sequence[Middleware]) -> Hooks | None:
    """The publish chain as hooks, if every middleware that publishes gives them (None: run
    it as :func:`publish_chain`)."""
    hooks: list[HookPair] = []
    for mw in middlewares:
        if type(mw).publish is Middleware.publish:
            continue
        pair = mw._publish_hooks()
        if pair is None:
            return None
        hooks.append(pair)
    return Hooks(hooks)


class _PublishStep:
    """``call -> publish(call, nxt)``: returns the middleware's coroutine itself, where an
    ``async def`` step would add a coroutine per middleware and message."""

    __slots__ = ("nxt", "publish")

    def __init__(
        self, publish: Callable[[PublishCall, PublishNext], Awaitable[Any]], nxt: PublishNext
    ):
        self.publish = publish
        self.nxt = nxt

    def __call__(self, call: PublishCall) -> Awaitable[Any]:
        return self.publish(call, self.nxt)


class _HandleStep:
    """``ctx -> handle(ctx, nxt)``, as :class:`_PublishStep`."""

    __slots__ = ("handle", "nxt")

    def __init__(self, handle: Callable[[Context, HandleNext], Awaitable[Any]], nxt: HandleNext):
        self.handle = handle
        self.nxt = nxt

    def __call__(self, ctx: Context) -> Awaitable[Any]:
        return self.handle(ctx, self.nxt)


def outcome_of(exc: BaseException | None) -> str:
    """A short name for how handling ended: ok, reject, retry, invalid, cancelled or error.

    ``cancelled``: the handler was cancelled (a shutdown, or the task running it was cancelled)
    before it finished; the message was not settled and will be delivered again. A handler
    cancelled for running past its ``timeout`` is an ``error`` (it fails with Timeout)."""
    if exc is None:
        return "ok"
    if not isinstance(exc, Exception):  # CancelledError, KeyboardInterrupt, SystemExit
        return "error" if is_timeout_cancel(exc) else "cancelled"
    if isinstance(exc, InvalidPayload):
        return "invalid"
    if isinstance(exc, Reject):
        return "reject"
    if isinstance(exc, Retry):
        return "retry"
    return "error"


class TracingMiddleware(Middleware):
    """Propagates W3C trace context: handlers run in a child span of the incoming message's
    ``traceparent``; publishes carry the current span (or start a new trace)."""

    async def publish(self, call: PublishCall, call_next: PublishNext) -> Any:
        if h.TRACEPARENT not in call.message.headers:
            call.message.headers[h.TRACEPARENT] = outgoing_traceparent()
        return await call_next(call)

    def _publish_step(self, nxt: PublishNext) -> PublishNext:
        if type(self).publish is not TracingMiddleware.publish:
            return super()._publish_step(nxt)
        traceparent = h.TRACEPARENT

        def stamp(call: PublishCall) -> Awaitable[Any]:  # publish() without its coroutine
            headers = call.message.headers
            if traceparent not in headers:
                headers[traceparent] = outgoing_traceparent()
            return nxt(call)

        return stamp

    def _publish_hooks(self) -> HookPair | None:
        if type(self).publish is not TracingMiddleware.publish:
            return None
        traceparent = h.TRACEPARENT

        def enter(call: PublishCall) -> None:
            headers = call.message.headers
            if traceparent not in headers:
                headers[traceparent] = outgoing_traceparent()

        return enter, None

    async def handle(self, ctx: Context, call_next: HandleNext) -> Any:
        parent = TraceContext.parse(ctx.message.headers.get(h.TRACEPARENT))
        span = parent.child() if parent is not None else TraceContext.new()
        ctx.trace = span
        token = current_trace.set(span)
        try:
            return await call_next(ctx)
        finally:
            current_trace.reset(token)

    def _handle_hooks(self) -> HookPair | None:
        if type(self).handle is not TracingMiddleware.handle:
            return None
        traceparent, set_trace, reset_trace = h.TRACEPARENT, current_trace.set, current_trace.reset

        def enter(ctx: Context) -> Any:
            ctx.trace = span = span_of(ctx.message.headers.get(traceparent))
            return set_trace(span)

        def leave(ctx: Context, token: Any, error: BaseException | None) -> None:
            reset_trace(token)

        return enter, leave


def tracing_middleware(tracing: str, tracer_provider: Any = None) -> Middleware:
    """The built-in tracing of ``Service(tracing=...)``: "w3c" (``traceparent`` only) or
    "otel" (OpenTelemetry spans, :mod:`tidings.service.otel`, imported only then)."""
    if tracing == "w3c":
        return TracingMiddleware()
    if tracing == "otel":
        from .otel import OpenTelemetryMiddleware

        return OpenTelemetryMiddleware(tracer_provider)
    raise BadRequest(f"tracing={tracing!r}: use one of {', '.join(TRACING_MODES)}")


class LoggingMiddleware(Middleware):
    """Logs each handled message (id, correlation id, outcome, duration) and each publish."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.log = logger or logging.getLogger("tidings.service")
        self.level = level

    async def publish(self, call: PublishCall, call_next: PublishNext) -> Any:
        if not self.log.isEnabledFor(logging.DEBUG):
            return await call_next(call)
        result = await call_next(call)
        self.log.debug(
            "published %s to %s msg_id=%s correlation_id=%s",
            call.kind,
            call.topic,
            call.message.msg_id,
            call.message.headers.get(h.CORRELATION_ID, "-"),
        )
        return result

    def _publish_step(self, nxt: PublishNext) -> PublishNext:
        if type(self).publish is not LoggingMiddleware.publish:
            return super()._publish_step(nxt)
        publish, enabled = self.publish, self.log.isEnabledFor

        def step(call: PublishCall) -> Awaitable[Any]:  # no coroutine unless it logs
            return publish(call, nxt) if enabled(logging.DEBUG) else nxt(call)

        return step

    def _publish_hooks(self) -> HookPair | None:
        if type(self).publish is not LoggingMiddleware.publish:
            return None
        log, enabled = self.log, self.log.isEnabledFor

        def enter(call: PublishCall) -> bool:
            return enabled(logging.DEBUG)

        def leave(call: PublishCall, logs: bool, error: BaseException | None) -> None:
            if logs and error is None:
                log.debug(
                    "published %s to %s msg_id=%s correlation_id=%s",
                    call.kind,
                    call.topic,
                    call.message.msg_id,
                    call.message.headers.get(h.CORRELATION_ID, "-"),
                )

        return enter, leave

    async def handle(self, ctx: Context, call_next: HandleNext) -> Any:
        started = time.perf_counter()
        try:
            result = await call_next(ctx)
        except BaseException as exc:  # an error, or a cancellation (outcome "cancelled")
            self._handled(ctx, exc, started)
            raise
        if self.log.isEnabledFor(self.level):  # ok or duplicate: logged at ``level``
            self._handled(ctx, None, started)
        return result

    def _handle_step(self, nxt: HandleNext) -> HandleNext:
        if type(self).handle is not LoggingMiddleware.handle:
            return super()._handle_step(nxt)
        # it logs at ``level`` or WARNING: nothing at all if the higher of them is dropped
        handle, enabled, highest = self.handle, self.log.isEnabledFor, max(self.level, WARNING)

        def step(ctx: Context) -> Awaitable[Any]:  # nothing to log at all: no coroutine
            return handle(ctx, nxt) if enabled(highest) else nxt(ctx)

        return step

    def _handle_hooks(self) -> HookPair | None:
        if type(self).handle is not LoggingMiddleware.handle:
            return None
        enabled, level, highest = self.log.isEnabledFor, self.level, max(self.level, WARNING)
        handled, clock = self._handled, time.perf_counter

        def enter(ctx: Context) -> float | None:  # None: nothing would be logged at all
            return clock() if enabled(highest) else None

        def leave(ctx: Context, started: float | None, error: BaseException | None) -> None:
            if started is None:
                return
            if error is None:
                if enabled(level):  # ok or duplicate: logged at ``level``
                    handled(ctx, None, started)
            else:  # an error, or a cancellation (outcome "cancelled")
                handled(ctx, error, started)

        return enter, leave

    def _handled(self, ctx: Context, error: BaseException | None, started: float) -> None:
        outcome = "duplicate" if ctx.duplicate else outcome_of(error)
        level = self.level if outcome in ("ok", "duplicate", "cancelled") else WARNING
        if self.log.isEnabledFor(level):
            self.log.log(
                level,
                "%s %s/%s id=%s msg_id=%s correlation_id=%s delivery=%d %.1fms%s",
                outcome,
                ctx.topic,
                ctx.group,
                ctx.message.id,
                ctx.message.msg_id or "-",
                ctx.correlation_id or "-",
                ctx.delivery_count,
                (time.perf_counter() - started) * 1000,
                _why(error),
            )


def _why(error: BaseException | None) -> str:
    if isinstance(error, Exception):
        return f": {type(error).__name__}: {error}"
    return ": ran past its timeout" if error is not None and is_timeout_cancel(error) else ""


class MetricsMiddleware(Middleware):
    """Calls hooks with what a metrics library needs; wire them to Prometheus, StatsD, ...

    ``on_publish(topic, kind, seconds, error)`` after each publish (``error`` is None on
    success, the ``asyncio.CancelledError`` of a cancelled publish, else the exception);
    ``on_handled(topic, group, outcome, seconds)`` after each handled message with outcome ok,
    duplicate, invalid, reject, retry, cancelled or error."""

    def __init__(
        self,
        on_publish: Callable[[str, str, float, BaseException | None], None] | None = None,
        on_handled: Callable[[str, str, str, float], None] | None = None,
    ) -> None:
        self.on_publish = on_publish
        self.on_handled = on_handled

    async def publish(self, call: PublishCall, call_next: PublishNext) -> Any:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await call_next(call)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if self.on_publish is not None:
                self.on_publish(call.topic, call.kind, time.perf_counter() - started, error)

    async def handle(self, ctx: Context, call_next: HandleNext) -> Any:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await call_next(ctx)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if self.on_handled is not None:
                outcome = "duplicate" if ctx.duplicate else outcome_of(error)
                self.on_handled(ctx.topic, ctx.group, outcome, time.perf_counter() - started)

    # the same as hooks (see .hooks): with only built-in middleware, no coroutine per message
    def _publish_hooks(self) -> HookPair | None:
        if type(self).publish is not MetricsMiddleware.publish:
            return None
        clock = time.perf_counter

        def leave(call: PublishCall, started: float, error: BaseException | None) -> None:
            if self.on_publish is not None:
                self.on_publish(call.topic, call.kind, clock() - started, error)

        return lambda call: clock(), leave

    def _handle_hooks(self) -> HookPair | None:
        if type(self).handle is not MetricsMiddleware.handle:
            return None
        clock = time.perf_counter

        def leave(ctx: Context, started: float, error: BaseException | None) -> None:
            if self.on_handled is not None:
                outcome = "duplicate" if ctx.duplicate else outcome_of(error)
                self.on_handled(ctx.topic, ctx.group, outcome, clock() - started)

        return lambda ctx: clock(), leave
