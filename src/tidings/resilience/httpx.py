"""Resilient outgoing HTTP with httpx (``pip install tidings[http]``)::

    client = httpx.AsyncClient(transport=ResilientTransport(pipeline))

:class:`ResilientTransport` wraps an ``httpx.AsyncBaseTransport`` (the default
``httpx.AsyncHTTPTransport()`` when none is given) and sends each request through a
:class:`~tidings.resilience.Pipeline`, keyed by ``host:port`` (or ``callee``). At this boundary
httpx's errors become tidings' (their ``__cause__`` kept): a timeout is
:class:`tidings.Timeout`, a connection failure :class:`~tidings.errors.TransportUnavailable`,
so the default retry policy retries them; a 429 answer is :class:`tidings.RateLimited` and a
502/503/504 a TransportUnavailable, both carrying the ``Retry-After`` hint. When the pipeline
gives up on such an answer, the last response is returned as it is (the caller sees the
status, as without the wrapper); a breaker or bulkhead rejection raises its typed error.
Only wrap requests that are safe to repeat when retries or hedging are configured.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Collection

import httpx

from ..errors import RateLimited, Timeout, TransportUnavailable
from .pipeline import Pipeline

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (a number or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def _status_failure(response: httpx.Response, callee: str) -> Exception:
    hint = retry_after(response)
    text = f"{callee} answered HTTP {response.status_code}"
    exc: Exception
    if response.status_code == 429:
        exc = RateLimited(f"{text}: it is rate limiting this caller", retry_after=hint)
    else:
        exc = TransportUnavailable(f"{text}: the service is unavailable or overloaded")
        exc.retry_after = hint  # type: ignore[attr-defined]  # as RateLimited has: retry reads it
    exc.response = response  # type: ignore[union-attr]  # read back by ResilientTransport below
    return exc


class ResilientTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        pipeline: Pipeline,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        callee: str | None = None,
        failure_statuses: Collection[int] = RETRYABLE_STATUSES,
    ) -> None:
        self.pipeline = pipeline
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self.callee = callee
        self.failure_statuses = frozenset(failure_statuses)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        callee = self.callee or f"{request.url.host}:{request.url.port or request.url.scheme}"

        async def once() -> httpx.Response:
            try:
                response = await self.transport.handle_async_request(request)
            except httpx.TimeoutException as exc:
                raise Timeout(f"HTTP {request.method} {request.url} timed out: {exc}") from exc
            except httpx.TransportError as exc:
                raise TransportUnavailable(
                    f"HTTP {request.method} {request.url} failed: {exc or type(exc).__name__}"
                ) from exc
            if response.status_code in self.failure_statuses:
                await response.aread()
                await response.aclose()
                raise _status_failure(response, callee)
            return response

        try:
            return await self.pipeline.run(once, callee=callee)
        except (RateLimited, TransportUnavailable) as exc:
            response: httpx.Response | None = getattr(exc, "response", None)
            if response is None:
                raise
            return response

    async def aclose(self) -> None:
        await self.transport.aclose()
