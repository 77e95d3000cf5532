"""OpenTelemetry spans for a service's messages: ``tidings.Service(..., tracing="otel")``.

:class:`OpenTelemetryMiddleware` takes the place of the W3C ``TracingMiddleware`` and follows
OpenTelemetry's messaging semantic conventions (``messaging.system = "tidings"``):

- each publish (event, command, request, reply) is a PRODUCER span ``send <topic>``, or
  ``create <topic>`` for each message of a ``publish_many``; its context goes out in the
  ``traceparent`` header through the configured OTel propagators;
- each handling is a CONSUMER span ``process <topic>``, a child of the message's
  ``traceparent``, current while the handler runs (so the handler's own spans and publishes nest
  under it); ``ctx.trace`` and ``tidings.service.current_trace`` carry the same ids;
- the settlement is a CLIENT span ``ack|nack|reject <topic>`` under the process span;
- :func:`batch_span` is a process span for messages handled together, with a link (not a
  parent) to each message's context.

The spans come from the global tracer provider unless one is given. This module imports
``opentelemetry`` (the ``tidings[otel]`` extra: opentelemetry-api only, the SDK and exporter
are the application's choice), and is imported only when OTel tracing is asked for, so a
service without it neither imports nor pays for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .. import headers as h
from ..errors import BadRequest, InvalidPayload
from .execution import SETTLE_HOOK, settle_operation
from .idempotency import DuplicateMessage
from .middleware import (
    BATCH_SIZE,
    HandleNext,
    Middleware,
    PublishCall,
    PublishNext,
    outcome_of,
)
from .outcomes import Reject, Retry
from .tracing import TraceContext, current_trace

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanKind, StatusCode
except ImportError as exc:  # pragma: no cover - the extra is installed in the test env
    raise BadRequest(
        "tracing='otel' needs OpenTelemetry: pip install 'tidings[otel]' "
        "(and an SDK with an exporter, e.g. opentelemetry-sdk)"
    ) from exc

if TYPE_CHECKING:
    from ..model import Message
    from .app import Service
    from .context import Context
    from .execution import Handled
    from .handlers import Handler

SYSTEM = "tidings"

_ERRORS_ARE_FINE = (Reject, Retry, DuplicateMessage)  # asked for: not a failed span


def _tracer(provider: Any) -> trace.Tracer:
    from importlib.metadata import PackageNotFoundError, version

    try:
        tidings_version = version("tidings")
    except PackageNotFoundError:  # a source tree that is not installed
        tidings_version = None
    return trace.get_tracer("tidings", tidings_version, tracer_provider=provider)


def _fail(span: trace.Span, exc: BaseException) -> None:
    span.set_attribute("error.type", type(exc).__qualname__)
    if not isinstance(exc, _ERRORS_ARE_FINE):
        span.record_exception(exc)
        span.set_status(StatusCode.ERROR, str(exc) or type(exc).__name__)


class OpenTelemetryMiddleware(Middleware):
    """Spans for publishes, handlings and settlements (see the module docstring)."""

    def __init__(self, tracer_provider: Any = None) -> None:
        self.tracer = _tracer(tracer_provider)

    async def publish(self, call: PublishCall, call_next: PublishNext) -> Any:
        message = call.message
        parent = None
        current = trace.get_current_span().get_span_context()
        if not current.is_valid and h.TRACEPARENT in message.headers:
            parent = propagate.extract(message.headers)  # a trace handed over by the caller
        batch = call.state.get(BATCH_SIZE)
        operation = "create" if batch else "send"
        temporary = call.kind == "reply"  # an inbox: one per requester, not a name to group by
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": operation,
            "messaging.operation.name": operation,
            "messaging.destination.name": call.topic,
            "messaging.message.body.size": len(message.body),
            "tidings.message.kind": call.kind,
        }
        if message.msg_id:
            attributes["messaging.message.id"] = message.msg_id
        if temporary:
            attributes["messaging.destination.temporary"] = True
        if batch:
            attributes["messaging.batch.message_count"] = batch
        if message.key is not None:
            attributes["messaging.message.key"] = message.key  # no semconv name across systems
        correlation = message.headers.get(h.CORRELATION_ID)
        if correlation:
            attributes["messaging.message.conversation_id"] = correlation
        name = f"{operation} {'(temporary)' if temporary else call.topic}"
        with self.tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.PRODUCER, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:  # fmt: skip
            propagate.inject(message.headers)
            try:
                result = await call_next(call)
            except BaseException as exc:
                _fail(span, exc)
                raise
            partition = getattr(result, "partition", None)
            if isinstance(partition, int):
                span.set_attribute("messaging.destination.partition.id", str(partition))
            if not correlation and call.kind == "request":
                reply_correlation = getattr(result, "headers", {}).get(h.CORRELATION_ID)
                if reply_correlation:
                    span.set_attribute("messaging.message.conversation_id", reply_correlation)
            return result

    async def handle(self, ctx: Context, call_next: HandleNext) -> Any:
        span = self.tracer.start_span(
            f"process {ctx.topic}",
            context=propagate.extract(ctx.headers),
            kind=SpanKind.CONSUMER,
            attributes=_consumer_attributes(ctx.message, ctx.group, "process"),
        )
        span.set_attribute("tidings.message.delivery_count", ctx.delivery_count)
        span_context = span.get_span_context()
        ctx.trace = TraceContext(
            trace.format_trace_id(span_context.trace_id),
            trace.format_span_id(span_context.span_id),
            f"{int(span_context.trace_flags):02x}",
        )
        ctx.state[SETTLE_HOOK] = _Settlement(self.tracer, span)
        token = otel_context.attach(trace.set_span_in_context(span))
        tidings_token = current_trace.set(ctx.trace)
        error: BaseException | None = None
        try:
            return await call_next(ctx)
        except BaseException as exc:
            error = exc
            _fail(span, exc)
            raise
        finally:
            current_trace.reset(tidings_token)
            otel_context.detach(token)
            duplicate = ctx.duplicate or isinstance(error, DuplicateMessage)
            outcome = "duplicate" if duplicate else outcome_of(error)
            span.set_attribute("tidings.outcome", outcome)
            if isinstance(error, InvalidPayload):
                span.set_status(StatusCode.ERROR, str(error))
            span.end()


def _consumer_attributes(message: Message, group: str, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": message.topic,
        "messaging.consumer.group.name": group,
        "messaging.message.id": message.msg_id or message.id,
        "messaging.destination.partition.id": str(message.partition),
        "messaging.message.body.size": len(message.body),
    }
    correlation = message.headers.get(h.CORRELATION_ID)
    if correlation:
        attributes["messaging.message.conversation_id"] = correlation
    return attributes


class _Settlement:
    """Wraps the settlement of one handled message (see ``execution.settle``) in a span."""

    __slots__ = ("process", "tracer")

    def __init__(self, tracer: trace.Tracer, process: trace.Span) -> None:
        self.tracer = tracer
        self.process = process

    async def __call__(
        self,
        settle: Callable[[Service, Handler, Message, Handled], Awaitable[None]],
        service: Service,
        handler: Handler,
        message: Message,
        handled: Handled,
    ) -> None:
        operation = settle_operation(handler, handled)
        parent = trace.set_span_in_context(self.process)
        span = self.tracer.start_span(
            f"{operation} {message.topic}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={
                **_consumer_attributes(message, handler.group, "settle"),
                "messaging.operation.name": operation,
            },
        )
        token = otel_context.attach(parent)  # a reply is sent under the process span
        try:
            await settle(service, handler, message, handled)
        except BaseException as exc:
            _fail(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()


@contextmanager
def batch_span(
    messages: Sequence[Message],
    group: str,
    *,
    tracer_provider: Any = None,
    operation: str = "process",
) -> Iterator[trace.Span]:
    """A CONSUMER span for messages handled together (e.g. ``await sub.next_batch(100)``),
    linked to each message's trace instead of parented by one of them::

        batch = await sub.next_batch(100)
        with batch_span(batch, "billing"):
            ...
    """
    links = []
    for message in messages:
        span_context = trace.get_current_span(propagate.extract(message.headers)).get_span_context()
        if span_context.is_valid:
            links.append(Link(span_context, {"messaging.message.id": message.msg_id or message.id}))
    topics = {m.topic for m in messages}
    topic = topics.pop() if len(topics) == 1 else None
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.consumer.group.name": group,
        "messaging.batch.message_count": len(messages),
    }
    if topic is not None:
        attributes["messaging.destination.name"] = topic
    with _tracer(tracer_provider).start_as_current_span(
        f"{operation} {topic or '(batch)'}", kind=SpanKind.CONSUMER, links=links,
        attributes=attributes,
    ) as span:  # fmt: skip
        yield span
