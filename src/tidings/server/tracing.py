"""Message tracing on the broker server: the ``--trace`` topic patterns, ring size and sample
turned into the engine's :class:`~tidings.broker.tracing.Tracer`, and changed at run time (the
HTTP API's ``PUT /api/v1/trace``). The server keeps one tracer for its whole run, so turning
tracing off and on again keeps what the ring holds; while no pattern is set the engine has no
tracer at all (the off path costs nothing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..broker.tracing import Tracer
from ..errors import BadRequest
from .auth import check_pattern, matches

if TYPE_CHECKING:
    from ..broker.engine import Broker


def parse_patterns(text: str | None) -> tuple[str, ...]:
    """``--trace`` as patterns: comma-separated topic patterns, ``>`` for all, off or ''."""
    if text is None or text.strip().lower() in ("", "off", "none"):
        return ()
    patterns = tuple(p.strip() for p in text.split(",") if p.strip())
    for pattern in patterns:
        try:
            check_pattern(pattern)
        except BadRequest as exc:
            raise BadRequest(f"--trace: {exc.message}") from None
    return patterns


def check_sample(sample: float) -> float:
    if not 0.0 < sample <= 1.0:
        raise BadRequest(
            f"the trace sample must be a fraction of messages above 0 and at most 1, got {sample}"
        )
    return sample


def _covers(patterns: tuple[str, ...]):
    if ">" in patterns:
        return lambda topic: True
    return lambda topic: any(matches(p, topic) for p in patterns)


def make_tracer(patterns: tuple[str, ...], size: int, sample: float) -> Tracer:
    if size < 1:
        raise BadRequest(f"--trace-size must be at least 1 event, got {size}")
    return Tracer(size, sample=check_sample(sample), covers=_covers(patterns), patterns=patterns)


def configure(
    broker: Broker, tracer: Tracer, patterns: tuple[str, ...], sample: float | None = None
) -> None:
    """Trace the topics matching ``patterns`` from now on (none: tracing off)."""
    for pattern in patterns:
        check_pattern(pattern)
    if sample is not None:
        tracer.set_sample(check_sample(sample))
    tracer.covers = _covers(patterns)
    tracer.patterns = patterns
    broker.set_tracer(tracer if patterns else None)
