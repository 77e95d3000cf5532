"""W3C Trace Context: the ``traceparent`` header carried from publisher to handler.

A handler runs inside the trace of the message it handles (a child span); whatever it
publishes carries that trace on. A publish outside any trace starts a new one. The current
trace lives in a context variable, so it follows asyncio tasks.
"""

from __future__ import annotations

import contextvars
import re
import secrets
from dataclasses import dataclass

_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

current_trace: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "tidings_trace", default=None
)


@dataclass(frozen=True)
class TraceContext:
    trace_id: str  # 32 lowercase hex digits, not all zero
    span_id: str  # 16 lowercase hex digits, not all zero (the parent id on the wire)
    flags: str = "01"  # sampled

    @classmethod
    def new(cls) -> TraceContext:
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    @classmethod
    def parse(cls, value: str | None) -> TraceContext | None:
        """The trace context of a ``traceparent`` header, None if absent or malformed."""
        if not value:
            return None
        match = _TRACEPARENT_RE.match(value.strip())
        if match is None:
            return None
        version, trace_id, span_id, flags = match.groups()
        if version == "ff" or set(trace_id) == {"0"} or set(span_id) == {"0"}:
            return None
        return cls(trace_id, span_id, flags)

    def child(self) -> TraceContext:
        """A new span in the same trace."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.flags)

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"
