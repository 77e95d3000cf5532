"""W3C Trace Context: the ``traceparent`` header carried from publisher to handler.

A handler runs inside the trace of the message it handles (a child span); whatever it
publishes carries that trace on. A publish outside any trace starts a new one. The current
trace lives in a context variable, so it follows asyncio tasks. A TraceContext is a NamedTuple:
built twice per handled message, a frozen dataclass cost three times as much.

Ids come from :func:`random.getrandbits` (W3C asks for random ids, not secret ones): the
``secrets`` module reads ``os.urandom`` for each, a system call that was 9% of the framework's
client CPU when publishing and handling. TraceContexts are made with ``tuple.__new__`` (the
NamedTuple's own ``__new__`` is a Python function: two thirds of the cost of a child span), and a
publish stamps its ``traceparent`` without making one (:func:`outgoing_traceparent`).
"""

from __future__ import annotations

import contextvars
import random
import re
from typing import NamedTuple

_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_bits = random.getrandbits  # the module's generator is reseeded in a forked child


_tuple_new = tuple.__new__


def _span_id() -> str:
    # int.to_bytes().hex() is a quarter of the cost of f"{n:016x}"
    return (_bits(64) or 1).to_bytes(8).hex()


_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_match = _TRACEPARENT_RE.match

current_trace: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "tidings_trace", default=None
)


class TraceContext(NamedTuple):
    trace_id: str  # 32 lowercase hex digits, not all zero
    span_id: str  # 16 lowercase hex digits, not all zero (the parent id on the wire)
    flags: str = "01"  # sampled

    @classmethod
    def new(cls) -> TraceContext:
        return _tuple_new(cls, ((_bits(128) or 1).to_bytes(16).hex(), _span_id(), "01"))

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
        return _tuple_new(cls, (trace_id, span_id, flags))

    def child(self) -> TraceContext:
        """A new span in the same trace."""
        return _tuple_new(TraceContext, (self[0], _span_id(), self[2]))

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def span_of(traceparent: str | None) -> TraceContext:
    """The span a handler of a message with this ``traceparent`` header runs in: a child span
    of it, or a new trace if absent or malformed (``TraceContext.parse(traceparent).child()``
    or ``TraceContext.new()``, without making the parent)."""
    if traceparent:
        match = _match(traceparent) or _match(traceparent.strip())
        if match is not None:
            version, trace_id, span_id, flags = match.groups()
            if version != "ff" and trace_id != _ZERO_TRACE and span_id != _ZERO_SPAN:
                return _tuple_new(TraceContext, (trace_id, _span_id(), flags))
    return _tuple_new(TraceContext, ((_bits(128) or 1).to_bytes(16).hex(), _span_id(), "01"))


def outgoing_traceparent() -> str:
    """The ``traceparent`` of a message published now: a child span of the current trace, or
    a new trace (``current_trace.get().child().traceparent`` or
    ``TraceContext.new().traceparent``, without making the TraceContext)."""
    parent = current_trace.get()
    if parent is None:
        return f"00-{(_bits(128) or 1).to_bytes(16).hex()}-{_span_id()}-01"
    return f"00-{parent[0]}-{_span_id()}-{parent[2]}"
