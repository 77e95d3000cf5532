"""The dashboard's message trace pages: ``/trace`` (what is traced and the newest events; the
search box of every page lands here with ``?q=``: a message id, a producer msg_id, a
correlation id or a W3C trace id) and ``/trace/{id}``, which draws a message's path as a
timeline, one lane per message of its conversation (the message itself, its replies and what
its handlers published, its dead-letter copy), with every event's details below. The lanes are
refreshed in place like the rest of the dashboard, so a message still on its way moves on."""

from __future__ import annotations

import datetime
import html
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ...errors import NotFound
from ...trace import TraceEvent, describe
from ..tracing import lookup
from .dashboard import _page, _table, guard

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..app import BrokerServer
    from ..auth import User

STYLE = """
.lane{background:#fff;border:1px solid #d5d9de;margin:10px 0;padding:8px 12px}
.lane td:first-child{white-space:nowrap}
.lane h3{margin:0 0 6px;font-size:14px}.lane h3 small{font-weight:normal;opacity:.7}
.track{position:relative;height:52px;border-bottom:2px solid #c4cad1;margin:4px 6px 6px}
.ev{position:absolute;bottom:-7px;width:12px;height:12px;margin-left:-6px;border-radius:50%;
border:2px solid #fff;background:#1f6feb}.ev.delivered,.ev.redelivered{background:#0e8a7e}
.ev.acked{background:#1a7f37}.ev.nacked,.ev.lease-expired{background:#bf8700}
.ev.rejected,.ev.expired,.ev.dead-lettered{background:#cf222e}.ev.redriven{background:#8250df}
.ev span{position:absolute;left:-4px;font-size:11px;white-space:nowrap;opacity:.85}
.kind{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;background:#1f6feb}
.kind.delivered,.kind.redelivered{background:#0e8a7e}.kind.acked{background:#1a7f37}
.kind.nacked,.kind.lease-expired{background:#bf8700}.kind.redriven{background:#8250df}
.kind.rejected,.kind.expired,.kind.dead-lettered{background:#cf222e}
"""


def _when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


def _trace_link(value: str, text: str | None = None) -> str:
    label = html.escape(text if text is not None else value)
    return f"<a href='/trace?q={quote(value, safe='')}'>{label}</a>"


def _lanes(events: list[TraceEvent]) -> dict[str, list[TraceEvent]]:
    lanes: dict[str, list[TraceEvent]] = {}
    for e in events:
        lanes.setdefault(e.id, []).append(e)
    return lanes


def _lane(message_id: str, events: list[TraceEvent], t0: float, span: float, main: bool) -> str:
    e = html.escape
    first = events[0]
    where = f"{first.topic}/{first.partition}@{first.offset}"
    role = "" if main else " <small>(related)</small>"
    dots = []
    for i, ev in enumerate(events):
        left = 100.0 * (ev.time - t0) / span
        rise = 14 + 14 * (i % 3)  # staggered labels: close events do not overwrite each other
        label = ev.event if ev.deliveries is None else f"{ev.event} #{ev.deliveries}"
        tip = f"{ev.event} +{(ev.time - t0) * 1000:.1f} ms {ev.group or ''} {describe(ev)}"
        dots.append(
            f"<i class='ev {e(ev.event)}' style='left:{left:.2f}%' title='{e(tip)}'>"
            f"<span style='bottom:{rise}px'>{e(label)}</span></i>"
        )
    rows = [
        [f"+{(ev.time - t0) * 1000:,.1f} ms", e(_when(ev.time)),
         f"<span class='kind {e(ev.event)}'>{e(ev.event)}</span>", e(ev.group or "-"),
         e(ev.member or "-"), "-" if ev.deliveries is None else str(ev.deliveries),
         e(describe(ev))]
        for ev in events
    ]  # fmt: skip
    table = _table(["after", "time", "event", "group", "member", "deliveries", "detail"], rows)
    head = (
        f"<h3><a href='/trace/{quote(message_id, safe='')}'>message {e(message_id)}</a> "
        f"<small>on <a href='/topics/{quote(first.topic, safe='')}'>{e(where)}</a></small>"
        f"{role}</h3>"
    )
    return (
        f"<div class='lane' data-message='{e(message_id)}'>{head}"
        f"<div class='track'>{''.join(dots)}</div>{table}</div>"
    )


def timeline(events: list[TraceEvent], related: list[TraceEvent]) -> str:
    """Every message of ``events`` then of ``related`` as a lane on one shared time axis."""
    everything = [*events, *related]
    if not everything:
        return "<p>No events.</p>"
    t0 = min(ev.time for ev in everything)
    span = max(max(ev.time for ev in everything) - t0, 1e-3) * 1.04  # room for the last dot
    out = [_lane(mid, evs, t0, span, True) for mid, evs in _lanes(events).items()]
    out += [_lane(mid, evs, t0, span, False) for mid, evs in _lanes(related).items()]
    return "".join(out)


def _links(events: list[TraceEvent]) -> str:
    """The ids that lead to the whole conversation."""
    found: list[str] = []
    for ev in events:
        if ev.trace_id:
            found.append(f"trace id {_trace_link(ev.trace_id)}")
        if ev.correlation_id:
            found.append(f"correlation id {_trace_link(ev.correlation_id)}")
        if ev.msg_id:
            found.append(f"msg_id {html.escape(ev.msg_id)}")
    unique = list(dict.fromkeys(found))
    return f"<p>{' · '.join(unique)}</p>" if unique else ""


def trace_routes(server: BrokerServer) -> list[BaseRoute]:
    tracer = server.tracer

    async def search(request: Request) -> Response:
        async def render(user: User | None) -> Response:
            q = request.query_params.get("q", "").strip()
            if q:
                try:
                    lookup(tracer, "message", q, user=user)
                except NotFound:
                    found = lookup(tracer, "conversation", q, user=user)
                    title = f"Conversation {q}"
                    body = f"<div id='trace' data-live>{timeline(found.events, [])}</div>"
                    return _page(title, _links(found.events) + body, STYLE)
                return RedirectResponse(f"/trace/{quote(q, safe='')}", status_code=303)
            traced = ", ".join(tracer.patterns) or "nothing (start the broker with --trace)"
            page = lookup(tracer, "topic", "", after=-1, limit=50, user=user)
            rows = [
                [str(ev.seq), html.escape(_when(ev.time)),
                 f"<span class='kind {html.escape(ev.event)}'>{html.escape(ev.event)}</span>",
                 html.escape(ev.topic), _trace_link(ev.id), html.escape(ev.group or "-"),
                 html.escape(describe(ev))]
                for ev in reversed(page.events)
            ]  # fmt: skip
            body = (
                f"<p>Traced topics: <b>{html.escape(traced)}</b>; the ring holds "
                f"{len(tracer):,} of {tracer.size:,} events. Search for a message id, a "
                "producer msg_id, a correlation id or a trace id above.</p>"
                "<h2>Newest events</h2><div id='events' data-live>"
                + _table(["seq", "time", "event", "topic", "message", "group", "detail"], rows)
                + "</div>"
            )
            return _page("Message trace", body, STYLE)

        return await guard(server, request, render)

    async def message(request: Request) -> Response:
        async def render(user: User | None) -> Response:
            wanted = request.path_params["id"]
            found = lookup(tracer, "message", wanted, user=user)
            body = _links(found.events)
            body += f"<div id='trace' data-live>{timeline(found.events, found.related)}</div>"
            return _page(f"Trace of {wanted}", body, STYLE)

        return await guard(server, request, render)

    return [Route("/trace", search), Route("/trace/{id}", message)]
