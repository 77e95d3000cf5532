"""Message tracing on the broker server: the ``--trace`` topic patterns, ring size and sample
turned into the engine's :class:`~tidings.broker.tracing.Tracer`, and changed at run time (the
HTTP API's ``PUT /api/v1/trace``). The server keeps one tracer for its whole run, so turning
tracing off and on again keeps what the ring holds; while no pattern is set the engine has no
tracer at all (the off path costs nothing).

With a data directory the ring is persisted (:class:`TracePersister`): what an earlier run
recorded is put back into the ring at start, and a background task appends the ring's new
rows to ``DIR/trace/`` every ``FLUSH_INTERVAL`` seconds (in a worker thread, off the event
loop's hot path) and once more at a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..broker.tracing import MAX_RESULTS, Tracer, row_events, row_member
from ..errors import BadRequest, NotFound
from ..storage.tracelog import TRACE_DIR, TraceLog
from ..trace import Trace
from .auth import User, check_pattern, matches

if TYPE_CHECKING:
    from ..broker.engine import Broker


log = logging.getLogger("tidings.server")

FLUSH_INTERVAL = 0.5  # seconds between two appends of the ring's new rows to DIR/trace


class TracePersister:
    """Keeps ``tracer``'s ring in ``data_dir``/trace across restarts (see the module doc)."""

    def __init__(self, tracer: Tracer, data_dir: str, interval: float = FLUSH_INTERVAL) -> None:
        self.tracer = tracer
        self.interval = interval
        self.log = TraceLog(
            os.path.join(data_dir, TRACE_DIR),
            keep=tracer.size,
            count=row_events,
            segment_events=max(1_000, tracer.size // 10),
        )
        self.written = 0  # seq of the newest event written
        self._task: asyncio.Task[None] | None = None

    def restore(self) -> int:
        """Put what earlier runs wrote back into the (empty) ring; returns the events."""
        try:
            rows, consumers = self.log.load()
        except OSError as exc:
            log.warning("message trace: cannot read %s (%s); starting empty", self.log.dir, exc)
            return 0
        if not rows:
            return 0
        self.tracer.restore(rows, consumers)
        self.written = self.tracer.seq
        return len(self.tracer)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tidings-trace")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # never let the writer die; the ring itself is unaffected
                log.exception("message trace: writing %s failed", self.log.dir)

    def _pending(self) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
        rows = self.tracer.rows_after(self.written)
        consumers = self.tracer.consumers
        named = {
            member: who
            for row in rows
            if (member := row_member(row)) is not None
            and (who := consumers.get(member)) is not None
        }
        return rows, named

    async def flush(self) -> None:
        """Append the rows recorded since the last flush (in a worker thread)."""
        rows, named = self._pending()
        if not rows:
            return
        await asyncio.get_running_loop().run_in_executor(None, self.log.append, rows, named)
        last = rows[-1]
        self.written = last[0] + row_events(last) - 1

    async def stop(self) -> None:
        """The last flush, then fsync and close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        finally:
            self.log.close()


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


def _covers(patterns: tuple[str, ...]) -> Callable[[str], bool]:
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


KINDS = ("message", "conversation", "topic")


def lookup(
    tracer: Tracer,
    kind: str,
    value: str,
    *,
    after: int = 0,
    limit: int = 1000,
    user: User | None = None,
) -> Trace:
    """Answer a trace query (the protocol's TRACE, the HTTP API's /api/v1/trace routes) with
    only the events of topics ``user`` may subscribe to. A message or conversation without
    any is NotFound, with what to check."""
    if kind not in KINDS:
        raise BadRequest(f"trace kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not 1 <= limit <= MAX_RESULTS:
        raise BadRequest(f"limit must be from 1 to {MAX_RESULTS}, got {limit}")

    def visible(topic: str) -> bool:
        return user is None or user.may("subscribe", topic)

    if kind == "topic":
        events, last = tracer.topic(value or None, after, limit, visible)
        return Trace(events=events, last_seq=last, dropped=tracer.dropped)
    found = tracer.message(value) if kind == "message" else tracer.conversation(value)
    events = [e for e in found if visible(e.topic)]
    if not events:
        what = "message" if kind == "message" else "correlation id or trace id"
        state = (
            f"tracing covers {', '.join(tracer.patterns)}" if tracer.patterns else "tracing is off"
        )
        raise NotFound(
            f"no trace of {what} {value!r}: {state} (start the broker with --trace, or PUT "
            f"/api/v1/trace), and the ring keeps the last {tracer.size:,} events"
        )
    related = [e for e in tracer.related(events) if visible(e.topic)] if kind == "message" else []
    return Trace(events=events, related=related, last_seq=tracer.seq, dropped=tracer.dropped)
