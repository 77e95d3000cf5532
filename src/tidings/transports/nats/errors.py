"""Translation of nats-py errors into the tidings error catalogue, at the transport boundary.

Every call into nats-py runs inside :func:`translated`; the original error stays reachable as
``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import nats.errors
import nats.js.errors

from ...errors import (
    AlreadyExists,
    BadRequest,
    ConnectionLost,
    MessageTooLarge,
    NotFound,
    TidingsError,
    Timeout,
    TopicFull,
    TransportUnavailable,
    Unauthorized,
)

# JetStream API error codes (err_code) that have a tidings meaning.
_ALREADY_EXISTS = {10058, 10013, 10148}  # stream / consumer name in use
_FULL = {10077, 10078, 10047}  # max messages / max bytes exceeded, storage resources exceeded
_TOO_LARGE = {10054}
_NO_CLUSTER = {10074, 10023}  # replicas > 1 without a cluster; insufficient resources

_UNAVAILABLE_HINT = (
    "JetStream did not answer: check that nats-server runs with -js (JetStream enabled) and, "
    "in a cluster, that a majority of the servers is up"
)


def translate(exc: BaseException, what: str) -> TidingsError:
    """The tidings error for ``exc`` raised while doing ``what``."""
    if isinstance(exc, TidingsError):
        return exc
    if isinstance(exc, nats.js.errors.APIError):
        code = exc.err_code
        desc = exc.description or str(exc)
        if code in _ALREADY_EXISTS:
            return AlreadyExists(f"{what}: already exists ({desc})")
        if code in _FULL:
            return TopicFull(f"{what}: {desc}; consume messages or raise the topic's limits")
        if code in _TOO_LARGE:
            return MessageTooLarge(f"{what}: {desc}; raise max_message_size or send less")
        if code in _NO_CLUSTER:
            return BadRequest(
                f"{what}: {desc}; replicas > 1 need a JetStream cluster of at least that many "
                "servers (see docs/scaling.md)"
            )
        if isinstance(exc, nats.js.errors.NotFoundError):
            return NotFound(f"{what}: not found ({desc})")
        if isinstance(exc, nats.js.errors.BadRequestError):
            return BadRequest(f"{what}: {desc}")
        if isinstance(exc, nats.js.errors.ServiceUnavailableError):
            return TransportUnavailable(f"{what}: {_UNAVAILABLE_HINT}")
        return TidingsError(f"{what}: JetStream error {exc.code}/{code}: {desc}")
    if isinstance(exc, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
        return TransportUnavailable(f"{what}: {_UNAVAILABLE_HINT}")
    if isinstance(exc, nats.errors.MaxPayloadError):
        return MessageTooLarge(f"{what}: larger than the server's max_payload")
    if isinstance(exc, nats.errors.NoServersError):
        return TransportUnavailable(f"{what}: no NATS server reachable; check the nats:// URL")
    if isinstance(exc, nats.errors.AuthorizationError):
        return Unauthorized(f"{what}: the NATS server refused the credentials in the URL")
    if isinstance(
        exc,
        nats.errors.ConnectionClosedError
        | nats.errors.StaleConnectionError
        | nats.errors.ConnectionReconnectingError,
    ):
        return ConnectionLost(f"{what}: the NATS connection is closed")
    if isinstance(exc, nats.errors.TimeoutError | asyncio.TimeoutError | TimeoutError):
        return Timeout(f"{what}: the NATS server did not answer in time")
    if isinstance(exc, OSError):
        return ConnectionLost(f"{what}: {exc}")
    return TidingsError(f"{what}: {type(exc).__name__}: {exc}")


def connect_error(exc: BaseException, address: str, timeout: float) -> TidingsError:
    """The error for a first connect to the NATS server at ``address`` (host:port) that
    failed with ``exc``: said once, at once, in words that tell refused from wrong server."""
    if isinstance(exc, nats.errors.AuthorizationError):
        return Unauthorized(f"nats://{address} refused the credentials in the URL")
    if isinstance(exc, nats.errors.TimeoutError | asyncio.TimeoutError | TimeoutError):
        return Timeout(
            f"nats://{address} did not greet with NATS INFO within {timeout:g}s: is it a NATS "
            "server? (a NATS server greets every connection at once; an HTTP server, for one, "
            "waits silently; the NATS default port is 4222)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return TransportUnavailable(
            f"cannot connect to nats://{address}: connection refused. Is nats-server running "
            "there (nats-server -js)?"
        )
    if isinstance(exc, OSError):
        return TransportUnavailable(
            f"cannot connect to nats://{address}: {exc.strerror or exc}. Check the nats:// URL"
        )
    if isinstance(exc, nats.errors.Error) and "expecting INFO" in str(exc):
        return TransportUnavailable(
            f"not a NATS server at {address} (it answered without the NATS INFO greeting). "
            "Check the host and port: the NATS default port is 4222"
        )
    return translate(exc, f"connect to nats://{address}")


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Re-raise any non-tidings error of the block as its tidings equivalent."""
    try:
        yield
    except (TidingsError, asyncio.CancelledError):
        raise
    except Exception as exc:
        raise translate(exc, what) from exc
