"""The dashboard's page of one group's dead letters (``/topics/T/groups/G/dead-letters``):
what waits, with reason, deliveries, error, body and headers, and buttons that redrive one,
redrive all or purge them through the API (``static/dashboard.js`` posts them). Listing needs
the subscribe right on the topic; the buttons need what the API needs (publish, admin)."""

from __future__ import annotations

import base64
import datetime
import html
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import access

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..app import BrokerServer
    from ..auth import User

MAX_SHOWN = 200


def api_path(topic: str, group: str) -> str:
    return f"/api/v1/topics/{quote(topic, safe='')}/groups/{quote(group, safe='')}/dead-letters"


def page_path(topic: str, group: str) -> str:
    return f"/topics/{quote(topic, safe='')}/groups/{quote(group, safe='')}/dead-letters"


def button(
    label: str, url: str, body: dict[str, Any], confirm: str | None = None, method: str = "POST"
) -> str:
    """A button ``static/dashboard.js`` sends to the API (``method``, JSON ``body``)."""
    e = html.escape
    extra = f" data-confirm='{e(confirm)}'" if confirm else ""
    if method != "POST":
        extra += f" data-method='{e(method)}'"
    return (
        f"<button data-post='{e(url)}' data-body='{e(json.dumps(body))}'{extra}>{e(label)}</button>"
    )


def render(
    server: BrokerServer, user: User | None, request: Request, topic: str, group: str
) -> str:
    """The page's body (the caller wraps it in the dashboard's page)."""
    from .dashboard import _fmt, _table

    access.require(user, request, "subscribe", topic)
    e = html.escape
    letters = server.runtime.broker.dead_letters(topic, group, MAX_SHOWN)
    api = api_path(topic, group)
    rows = []
    for d in letters:
        try:
            text = e(d.body.decode())
        except UnicodeDecodeError:
            text = "<i>binary</i> " + e(base64.b64encode(d.body[:96]).decode())
        when = datetime.datetime.fromtimestamp(d.dead_lettered_at).strftime("%Y-%m-%d %H:%M:%S")
        heads = "<br>".join(f"{e(k)}: {e(v)}" for k, v in sorted(d.headers.items()))
        rows.append([
            e(d.id), e(when), e(d.reason), _fmt(d.deliveries), e(d.error or ""), e(d.key or ""),
            f"<pre>{text}</pre>", heads, button("redrive", api + "/redrive", {"ids": [d.id]}),
        ])  # fmt: skip
    headers = ["id", "dead-lettered", "reason", "deliveries", "error", "key", "body", "headers", ""]
    actions = ""
    if letters:
        actions = "<p>" + button("Redrive all", api + "/redrive", {}) + " " + button(
            "Purge all", api + "/purge", {}, f"Drop every dead letter of group {group!r}?"
        ) + "</p>"  # fmt: skip
    back = f"<a href='/topics/{quote(topic, safe='')}'>{e(topic)}</a>"
    note = (
        f"<p>Dead letters of group <b>{e(group)}</b> of {back} that wait: a redrive sends them "
        "back to this group only, under their original id (the topic's other groups do not "
        "see them again).</p>"
    )
    empty = "" if letters else "<p id='dl-empty'>No dead letters wait for this group.</p>"
    return (
        f"{note}{actions}<p id='dl-result'></p>"
        f"<div id='dead-letters' data-live>{_table(headers, rows, {3})}{empty}</div>"
    )
