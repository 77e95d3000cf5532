"""W3C Trace Context: the ``traceparent`` header carried from publisher to handler.

A handler runs inside the trace of the message it handles (a child span); whatever it
publishes carries that trace on. A publish outside any trace starts a new one. The current
trace lives in a context variable, so it follows asyncio tasks. A TraceContext is a NamedTuple:
built twice per handled message, a frozen dataclass cost three times as much.

Ids come from :func:`random.getrandbits` (W3C asks for random ids, not secret ones): the
``secrets`` module reads ``os.urandom`` for each, a system call that was 9% of the framework's
client CPU when publishing and handling.
"""

from __future__ import annotations

import contextvars
import random
import re
from typing import NamedTuple

_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_bits = random.getrandbits  # the module's generator is reseeded in a forked child


def _span_id() -> str:
    # int.to_bytes().hex() is a quarter of the cost of f"{n:016x}"
    return (_bits(64) or 1).to_bytes(8).hex()


_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

current_trace: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "tidings_trace", default=None
)


class TraceContext(NamedTuple):
    trace_id: str  # 32 lowercase hex digits, not all zero
    span_id: str  # 16 lowercase hex digits, not all zero (the parent id on the wire)
    flags: str = "01"  # sampled

    @classmethod
    def new(cls) -> TraceContext:
        return cls((_bits(128) or 1).to_bytes(16).hex(), _span_id())

    @classmethod
    def parse(cls, value: str | None) -> TraceContext | None:
        """The trace context of a ``traceparent`` header, None if absent or malformed."""
        if not value:
            return None
        match = _TRACEPARENT_RE.match(value.strip())
        if match is None:
            return None
        version, trace_id, span_id, flags = match.groups()
        if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
            return None
        return cls(trace_id, span_id, flags)

    def child(self) -> TraceContext:
        """A new span in the same trace."""
        return TraceContext(self.trace_id, _span_id(), self.flags)

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"
