"""The one error catalogue of tidings.

Every public error has a stable numeric ``code`` (carried on the wire in error frames), an HTTP
status, a CLI exit code and a message that says what was wrong and what to do. The client raises
the same class the broker raised, looked up by code with :func:`error_for_code`. Foreign errors
(OSError, nats, ...) are translated at each boundary, keeping the original as ``__cause__``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AlreadyExists",
    "BadRequest",
    "BulkheadFull",
    "CircuitOpen",
    "ClockMovedBackwards",
    "Closed",
    "ConnectionLost",
    "Forbidden",
    "InvalidName",
    "InvalidPayload",
    "LeaseLost",
    "MessageTooLarge",
    "NoInstance",
    "NoResponders",
    "NotFound",
    "Overloaded",
    "ProtocolError",
    "RateLimited",
    "Rejected",
    "RemoteError",
    "RequestTimeout",
    "SagaConflict",
    "SagaNotFound",
    "StepFailed",
    "StorageError",
    "StorageFull",
    "TidingsError",
    "Timeout",
    "TopicConflict",
    "TopicFull",
    "TransportUnavailable",
    "Unauthorized",
    "Unsupported",
    "VersionMismatch",
    "error_for_code",
]


class TidingsError(Exception):
    """Base of every tidings error. ``code`` is stable across versions and transports."""

    code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message

    def __reduce__(self) -> tuple[Any, ...]:  # keep errors picklable with their message
        return (self.__class__, (self.message,))


class BadRequest(TidingsError, ValueError):
    """A bad argument or request; also a :class:`ValueError`, so ``except ValueError`` works."""

    code = 400
    http_status = 400
    exit_code = 2
    default_message = "bad request"


class InvalidName(BadRequest):
    code = 401
    default_message = "invalid name: use letters, digits, '.', '-' and '_' (1 to 200 characters)"


class MessageTooLarge(BadRequest):
    code = 402
    http_status = 413
    default_message = "message too large: raise the topic's max_message_size or send a smaller body"


class ProtocolError(BadRequest):
    code = 403
    default_message = "protocol error: the frame could not be decoded"


class VersionMismatch(ProtocolError):
    code = 404
    default_message = "protocol version not supported by the broker: upgrade the broker"


class Unsupported(BadRequest):
    code = 405
    http_status = 501
    default_message = "this transport cannot do that; see docs/transports.md for its capabilities"


class InvalidPayload(BadRequest):
    """A message body that does not decode or validate against the expected type."""

    code = 406
    http_status = 422
    default_message = (
        "invalid payload: the body does not match the declared type; fix the producer or the "
        "model (the message was dead-lettered with the validation error)"
    )


class Unauthorized(TidingsError):
    code = 410
    http_status = 401
    exit_code = 3
    default_message = "authentication required or failed: check the user and token"


class Forbidden(TidingsError):
    code = 411
    http_status = 403
    exit_code = 3
    default_message = "forbidden: the user lacks permission for this operation"


class NotFound(TidingsError, LookupError):
    """Also a :class:`LookupError`."""

    code = 420
    http_status = 404
    exit_code = 4
    default_message = "not found"


class NoInstance(NotFound):
    """No live instance offers what was asked (a service, an endpoint or an API version)."""

    code = 425
    default_message = "no live instance offers this: start one, or check `tidings services`"


class NoResponders(NoInstance):
    """A request or scatter went to a topic that nothing serves (NATS users know it as
    "no responders"); raised at once instead of waiting for the timeout."""

    code = 426
    default_message = (
        "no responder is subscribed to this topic: check the topic name and that the "
        "responding service is running (`tidings services`, `tidings topic list`)"
    )


class SagaNotFound(NotFound):
    """No saga instance with this id in the saga store (``tidings sagas show``)."""

    code = 427
    default_message = "no saga with this id: check the id and --db (`tidings sagas list`)"


class AlreadyExists(TidingsError):
    code = 421
    http_status = 409
    exit_code = 4
    default_message = "already exists"


class TopicConflict(AlreadyExists):
    """A topic re-declared with settings that differ from the existing one (as RabbitMQ's
    PRECONDITION_FAILED): nothing is changed; an identical re-declaration is accepted."""

    code = 422
    default_message = (
        "topic exists with different settings: declare it as it is, or delete and recreate it"
    )


class LeaseLost(TidingsError):
    code = 430
    http_status = 409
    exit_code = 5
    default_message = (
        "lease lost: the message's lease expired or is held by another member; "
        "it will be (or was) redelivered, so make the handler idempotent or extend the lease"
    )


class SagaConflict(TidingsError):
    """A saga instance changed under a transition (another orchestrator moved it first); the
    transition rolled back and its message is handled again against the new state."""

    code = 431
    http_status = 409
    exit_code = 5
    default_message = "the saga changed meanwhile: the transition rolled back and is retried"


class MemberStuck(LeaseLost):
    """The broker closed a subscription whose leases kept expiring without a settle."""

    code = 432
    default_message = (
        "member stuck: its leases expired again and again without an ack, nack or reject, so "
        "the broker closed the subscription and gave its messages to other members; settle "
        "(or extend) within the lease, and subscribe again"
    )


class TopicFull(TidingsError):
    code = 440
    http_status = 507
    exit_code = 6
    default_message = "topic full: its max bytes/messages limit is reached; consume or raise it"


class Overloaded(TidingsError):
    """A broker-wide resource alarm (memory) refuses publishes until it clears."""

    code = 441
    http_status = 503
    exit_code = 6
    default_message = (
        "broker overloaded: its memory is above the high watermark; publishing resumes when "
        "consumers catch up"
    )


class Rejected(TidingsError):
    """A resilience policy refused the call before it reached the callee (nothing was sent).
    ``retry_after`` is a hint in seconds when the policy knows when to try again."""

    code = 442
    http_status = 503
    exit_code = 6
    default_message = "rejected by the caller's resilience policy: the callee was not called"

    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.message, self.retry_after))


class CircuitOpen(Rejected):
    code = 443
    default_message = (
        "circuit open: recent calls to this callee failed too often, so calls fail fast until "
        "the breaker's open duration passes; fix or wait for the callee"
    )


class BulkheadFull(Rejected):
    code = 444
    default_message = (
        "bulkhead full: too many calls to this callee are in flight and its wait queue is full; "
        "the callee is slow or the limit is too low"
    )


class RateLimited(Rejected):
    code = 445
    http_status = 429
    default_message = "rate limited: the policy's call rate is used up; retry after the hint"


class StorageError(TidingsError):
    code = 450
    http_status = 500
    exit_code = 6
    default_message = "storage error"


class StorageFull(StorageError):
    code = 451
    http_status = 507
    default_message = "storage full: the broker's disk has no space left; free space and retry"


class Timeout(TidingsError, TimeoutError):
    """Also the built-in :class:`TimeoutError` (``asyncio.TimeoutError`` too)."""

    code = 460
    http_status = 504
    exit_code = 7
    default_message = "operation timed out"


class RequestTimeout(Timeout):
    code = 461
    default_message = "request timed out: no reply arrived before the deadline"


class ConnectionLost(TidingsError):
    code = 470
    http_status = 503
    exit_code = 8
    default_message = "connection to the broker lost"


class Closed(ConnectionLost):
    code = 471
    default_message = "the client or subscription is closed"


class TransportUnavailable(TidingsError):
    code = 480
    http_status = 503
    exit_code = 8
    default_message = "transport unavailable"


class RemoteError(TidingsError):
    """A responder's handler raised; ``remote_type`` names the exception class it raised."""

    code = 490
    http_status = 502
    exit_code = 9
    default_message = "the remote handler failed"

    def __init__(self, message: str | None = None, remote_type: str = "Exception") -> None:
        super().__init__(message)
        self.remote_type = remote_type

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.message, self.remote_type))


class StepFailed(TidingsError):
    """Raised by a saga participant's handler: the step failed for a business reason (card
    declined, out of stock). The participant's writes roll back, the failure is the reply, and
    the orchestrator retries the step if its policy says so, else compensates."""

    code = 491
    http_status = 422
    exit_code = 9
    default_message = "the saga step failed"


class ClockMovedBackwards(TidingsError):
    """The system clock stepped back further than an id generator is willing to wait."""

    code = 495
    http_status = 500
    exit_code = 1
    default_message = (
        "the clock moved backwards: ids issued now could repeat; fix the clock (NTP) or wait"
    )


def _catalogue() -> dict[int, type[TidingsError]]:
    out: dict[int, type[TidingsError]] = {}
    stack: list[type[TidingsError]] = [TidingsError]
    while stack:
        cls = stack.pop()
        if "code" in cls.__dict__:  # a subclass that keeps its parent's code does not own it
            out[cls.code] = cls
        stack.extend(cls.__subclasses__())
    return out


def error_for_code(code: int, message: str | None = None) -> TidingsError:
    """Build the error class registered for ``code`` (unknown codes give a TidingsError)."""
    cls = _catalogue().get(code, TidingsError)
    return cls(message)
