"""The dashboard at ``/``: server-rendered pages (overview, topics, one topic with its
partitions, groups and a message browser that reads dead-letter topics too; a group's dead
letters with redrive and purge buttons, see ``dashboard_deadletters``) with one small
vendored script (``static/dashboard.js``) that refreshes the live parts in place. Same users
and rights as the API (a browser asks for Basic credentials when the broker has users)."""

from __future__ import annotations

import base64
import datetime
import html
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from ...errors import NotFound, TidingsError
from ...headers import dead_letter_topic
from . import access
from . import dashboard_deadletters as deadletters
from .endpoints import Query, parse_query
from .events import PATH as EVENTS_PATH

if TYPE_CHECKING:
    from starlette.requests import Request

    from ...model import GroupInfo, TopicInfo
    from ..app import BrokerServer
    from ..auth import User

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1f3a5f;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header a{color:#fff;text-decoration:none}header b{font-size:16px}
main{padding:16px 20px;max-width:1200px}
table{border-collapse:collapse;background:#fff;margin:8px 0 18px;min-width:50%}
th,td{border:1px solid #d5d9de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border:1px solid #d5d9de;
padding:8px 14px;min-width:120px}.card b{display:block;font-size:20px}
.alarm{color:#b00020;font-weight:bold}pre{margin:0;white-space:pre-wrap;max-width:520px}
#refreshed{margin-left:auto;font-size:12px;opacity:.8}
header form{margin:0}header input{padding:3px 6px;width:260px;border:0;border-radius:3px}
"""


def _fmt(n: float | int | None, unit: str = "") -> str:
    if n is None:
        return "-"
    if isinstance(n, float):
        return f"{n:,.1f}{unit}"
    return f"{n:,}{unit}"


def _page(title: str, body: str, style: str = "") -> HTMLResponse:
    e = html.escape
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{e(title)} - tidings</title>"
        f"<style>{STYLE}{style}</style></head><body data-refresh='2000'>"
        "<header><b>tidings</b><a href='/'>Overview</a><a href='/topics'>Topics</a>"
        "<a href='/services'>Services</a><a href='/trace'>Trace</a>"
        "<a href='/api/v1/openapi.json'>API</a><form action='/trace' method='get'>"
        "<input name='q' type='search' placeholder='trace a message, correlation or trace id' "
        "aria-label='trace'></form><span id='refreshed'></span></header>"
        f"<main><h1>{e(title)}</h1>{body}</main>"
        "<script src='/static/dashboard.js'></script></body></html>"
    )


def _card(label: str, value: str, cls: str = "", key: str = "", unit: str = "") -> str:
    """A number with its label; ``key``: the overview field the live updates put in it
    (with ``unit``; one decimal, as ``_fmt`` writes a float, when the unit is /s or s)."""
    digits = 1 if unit in ("/s", " s") else 0
    live = ""
    if key:
        live = f" data-key='{key}' data-unit='{html.escape(unit)}' data-digits='{digits}'"
    return f"<div class='card {cls}'>{html.escape(label)}<b{live}>{html.escape(value)}</b></div>"


def _table(
    headers: list[str], rows: list[list[str]], numeric: AbstractSet[int] = frozenset()
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f"<td class='n'>{c}</td>" if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        ) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _link(topic: str) -> str:
    return f"<a href='/topics/{quote(topic, safe='')}'>{html.escape(topic)}</a>"


def _group_rows(t: TopicInfo, known: set[str]) -> list[list[str]]:
    rows = []
    for g in t.groups:
        dlq = dead_letter_topic(t.name, g.name)
        if g.spec is not None and g.spec.dead_letter_topic:
            dlq = g.spec.dead_letter_topic
        cell = "-"
        if dlq in known:
            letters = f"<a href='{deadletters.page_path(t.name, g.name)}'>dead letters</a>"
            cell = f"{_link(dlq)} ({letters})"
        rows.append(_group_row(g, cell))
    return rows


def _group_row(g: GroupInfo, dlq: str) -> list[str]:
    return [
        html.escape(g.name), html.escape(g.mode), _fmt(g.ready), _fmt(g.in_flight),
        _fmt(g.ready + g.in_flight), _fmt(g.delayed), _fmt(g.dead_lettered), _fmt(g.lag),
        _fmt(g.oldest_ready_age, " s"), _fmt(g.members), _fmt(g.ack_rate, "/s"), dlq,
    ]  # fmt: skip


GROUP_HEADERS = [
    "group", "mode", "ready", "in flight", "backlog", "delayed", "dead-lettered", "lag",
    "oldest ready", "members", "acks", "dead-letter topic",
]  # fmt: skip


async def guard(
    server: BrokerServer,
    request: Request,
    render: Callable[[User | None], Awaitable[Response]],
) -> Response:
    """Render a page for the authenticated caller, or an error page with its status."""
    try:
        user = await access.authenticate(server, request)
        return await render(user)
    except TidingsError as exc:
        headers = {"WWW-Authenticate": 'Basic realm="tidings"'} if exc.http_status == 401 else None
        body = f"<p class='alarm'>{html.escape(type(exc).__name__)}: "
        body += f"{html.escape(exc.message)}</p>"
        page = _page("Error", body)
        return HTMLResponse(page.body, status_code=exc.http_status, headers=headers)


def dashboard_routes(server: BrokerServer) -> list[BaseRoute]:
    broker = server.runtime.broker

    async def guarded(
        request: Request, render: Callable[[User | None], Awaitable[Response]]
    ) -> Response:
        return await guard(server, request, render)

    def visible(user: User | None) -> list[TopicInfo]:
        names = sorted(t.name for t in broker.list_topics() if access.may_see(user, t.name))
        return [broker.topic_info(n) for n in names]

    async def overview(request: Request) -> Response:
        async def render(user: User | None) -> Response:
            access.require_monitor(user, request)
            stats = server.stats()
            topics = visible(None)
            groups = [g for t in topics for g in t.groups]
            alarms = server.alarms
            cards = [
                _card("messages", _fmt(sum(t.messages for t in topics)), key="messages"),
                _card("backlog", _fmt(sum(g.ready + g.in_flight for g in groups)), key="backlog"),
                _card("publish rate", _fmt(sum(t.publish_rate for t in topics), "/s"),
                      key="publish_rate", unit="/s"),
                _card("ack rate", _fmt(sum(g.ack_rate for g in groups), "/s"), key="ack_rate",
                      unit="/s"),
                _card("connections", _fmt(stats.connections), key="connections"),
                _card("topics", _fmt(len(topics)), key="topics"),
                _card("storage", _fmt(sum(t.bytes for t in topics), " B"), key="storage_bytes",
                      unit=" B"),
                _card("uptime", _fmt(stats.uptime, " s"), key="uptime_seconds", unit=" s"),
            ]  # fmt: skip
            for name, alarm in (("memory", alarms.memory), ("disk", alarms.disk)):
                hidden = "" if alarm is not None else " hidden"
                cards.append(
                    f"<div class='card alarm' data-alarm='{name}'{hidden}>{name} alarm"
                    "<b>RAISED</b></div>"
                )
            body = f"<p>tidings {html.escape(stats.version)}</p>"
            # live by Server-Sent Events (static/dashboard.js), polling if they fail
            body += (
                f"<div id='overview' data-live data-events='{EVENTS_PATH}' class='cards'>"
                f"{''.join(cards)}</div>"
            )
            return _page("Overview", body)

        return await guarded(request, render)

    async def topics(request: Request) -> Response:
        async def render(user: User | None) -> Response:
            rows = [
                [_link(t.name), _fmt(len(t.partitions)), _fmt(t.messages),
                 _fmt(sum(g.ready + g.in_flight for g in t.groups)), _fmt(len(t.groups)),
                 _fmt(t.publish_rate, "/s"), _fmt(t.bytes, " B")]
                for t in visible(user)
            ]  # fmt: skip
            headers = ["topic", "partitions", "messages", "backlog", "groups", "publish", "bytes"]
            body = f"<div id='topics' data-live>{_table(headers, rows, {1, 2, 3, 4, 5, 6})}</div>"
            return _page("Topics", body)

        return await guarded(request, render)

    async def topic(request: Request) -> Response:
        async def render(user: User | None) -> Response:
            name = request.path_params["topic"]
            access.require_some(user, request, name)
            t = broker.topic_info(name)
            known = {s.name for s in broker.list_topics()}
            parts = _table(
                ["partition", "first offset", "next offset", "bytes"],
                [[_fmt(p.partition), _fmt(p.first_offset), _fmt(p.next_offset), _fmt(p.bytes)]
                 for p in t.partitions],
                {0, 1, 2, 3},
            )  # fmt: skip
            groups = _table(GROUP_HEADERS, _group_rows(t, known), set(range(2, 11)))
            stats = "".join(
                [_card("messages", _fmt(t.messages)), _card("publish rate",
                 _fmt(t.publish_rate, "/s")), _card("bytes", _fmt(t.bytes))]
            )  # fmt: skip
            body = f"<div id='topic-stats' data-live><div class='cards'>{stats}</div>"
            body += f"<h2>Groups</h2>{groups}<h2>Partitions</h2>{parts}</div>"
            body += await messages(user, request, t)
            return _page(f"Topic {name}", body)

        return await guarded(request, render)

    async def messages(user: User | None, request: Request, t: TopicInfo) -> str:
        try:
            access.require(user, request, "subscribe", t.name)
        except TidingsError as exc:
            return f"<h2>Messages</h2><p>{html.escape(exc.message)}</p>"
        spec = (Query("partition", int, 0, "", 0), Query("offset", int, None, "", 0))
        q = parse_query(spec, request)
        p = q["partition"]
        if p >= len(t.partitions):
            raise NotFound(f"topic {t.name!r} has no partition {p}")
        part = t.partitions[p]
        api = f"/api/v1/topics/{quote(t.name, safe='')}"
        start = part.first_offset if q["offset"] is None else max(q["offset"], part.first_offset)
        count = min(50, max(part.next_offset - start, 0))
        records = server.store.read(t.name, p, start, count) if count else []
        deleted = server.runtime.broker.is_deleted
        rows = []
        for r in (r for r in records if not deleted(t.name, p, r.offset)):
            try:
                text = html.escape(r.body.decode())
            except UnicodeDecodeError:
                text = "<i>binary</i> " + html.escape(base64.b64encode(r.body[:96]).decode())
            when = datetime.datetime.fromtimestamp(r.timestamp).strftime("%Y-%m-%d %H:%M:%S")
            heads = "<br>".join(
                f"{html.escape(k)}: {html.escape(v)}" for k, v in sorted(r.headers.items())
            )
            delete = deadletters.button(
                "delete",
                f"{api}/messages/{quote(r.id, safe='')}",
                {},
                f"Delete message {r.id}? No group of {t.name!r} will deliver it again.",
                "DELETE",
            )
            rows.append([_fmt(r.offset), html.escape(r.id), html.escape(when),
                         html.escape(r.key or ""), f"<pre>{text}</pre>", heads,
                         delete])  # fmt: skip
        nav = " ".join(
            f"<a href='?partition={i}'>partition {i}</a>" for i in range(len(t.partitions))
        )
        more = ""
        if records and records[-1].offset + 1 < part.next_offset:
            more = f"<a href='?partition={p}&offset={records[-1].offset + 1}'>next page</a>"
        table = _table(["offset", "id", "published", "key", "body", "headers", ""], rows, {0})
        purge = deadletters.button(
            "Purge topic", api + "/purge", {},
            f"Drop every message of {t.name!r}, for every group?",
        )  # fmt: skip
        return (
            f"<h2>Messages (partition {p}, read without consuming)</h2><p>{nav}</p>"
            f"<p>{purge}</p><p id='dl-result'></p>"
            f"<div id='messages' data-live>{table}</div>{more}"
        )

    async def group_dead_letters(request: Request) -> Response:
        async def render(user: User | None) -> Response:
            topic, group = request.path_params["topic"], request.path_params["group"]
            body = deadletters.render(server, user, request, topic, group)
            return _page(f"Dead letters of {group} on {topic}", body)

        return await guarded(request, render)

    script = resources.files(__package__).joinpath("static/dashboard.js").read_bytes()

    async def js(request: Request) -> Response:
        return Response(script, media_type="text/javascript")

    return [
        Route("/", overview),
        Route("/topics", topics),
        Route("/topics/{topic}", topic),
        Route("/topics/{topic}/groups/{group}/dead-letters", group_dead_letters),
        Route("/static/dashboard.js", js),
    ]
