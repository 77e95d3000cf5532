"""The dashboard's Services page: the live services of the registry with their topics, drawn
as a graph (publishers on the left, the topics in the middle, the consumers on the right) and
listed in a table. Each edge carries its rate in messages/s: a publisher's edge the rate its
own heartbeat reports for that flow, a consumer's edge (one per group) the broker's ack rate of
that group.

The broker reads the registry where the services write it: their heartbeats on the registry
topic (docs/discovery.md), one JSON record per instance and interval with the instance's
endpoints (the topics it handles, with the kind and group) and its outgoing flows (the topics
it publishes, sends or requests to, with rates). The newest record of each instance counts; an
instance that said ``down`` or whose heartbeat expired is gone. The page is server-rendered SVG
(no script needed) and refreshed in place like the other pages."""

from __future__ import annotations

import dataclasses
import html
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ...errors import NotFound
from . import access
from .dashboard import _page, _table, guard

if TYPE_CHECKING:
    from starlette.requests import Request

    from ...broker.engine import Broker
    from ...storage.base import Store
    from ..app import BrokerServer
    from ..auth import User

# tidings.client.registry.subjects.HEARTBEAT_TOPIC and HEARTBEAT_RETENTION (the server may not
# import the client; tests/management/test_services_page.py keeps them equal)
REGISTRY_TOPIC = "_tidings.registry"
WINDOW = 3600.0
READ_BATCH = 1000

STYLE = """
svg.map{background:#fff;border:1px solid #d5d9de;max-width:100%}
svg.map text{font:13px system-ui,sans-serif}svg.map .svc rect{fill:#1f3a5f}
svg.map .svc text{fill:#fff}svg.map .topic rect{fill:#eef1f4;stroke:#8c959f}
svg.map path{fill:none;stroke-width:2}svg.map .event{stroke:#1f6feb}
svg.map .command{stroke:#bf8700}svg.map .request{stroke:#8250df}
svg.map text.rate,svg.map text.group{font-size:11px;fill:#57606a;paint-order:stroke;
stroke:#fff;stroke-width:3px}svg.map text.rate{font-weight:600;fill:#24292f}
.legend span{display:inline-block;width:18px;height:3px;margin:0 4px 3px 12px}
"""
COLOURS = {"event": "#1f6feb", "command": "#bf8700", "request": "#8250df"}


@dataclasses.dataclass
class ServiceNode:
    name: str
    instances: set[str] = dataclasses.field(default_factory=set)
    versions: set[str] = dataclasses.field(default_factory=set)
    consumes: dict[str, set[str]] = dataclasses.field(default_factory=dict)  # topic -> kinds
    groups: dict[str, set[str]] = dataclasses.field(default_factory=dict)  # topic -> groups
    publishes: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    rates: dict[str, float] = dataclasses.field(default_factory=dict)  # published topic -> /s


def _kind(kind: str) -> str:
    """The framework's flow kinds (publish, send, request) as message types."""
    return {"publish": "event", "send": "command"}.get(kind, kind)


def _heartbeats(store: Store, broker: Broker, now: float) -> dict[str, dict[str, Any]]:
    """The newest heartbeat of each live instance."""
    try:
        info = broker.topic_info(REGISTRY_TOPIC)
    except NotFound:
        return {}
    latest: dict[str, dict[str, Any]] = {}
    for part in info.partitions:
        pos = max(store.offset_at(REGISTRY_TOPIC, part.partition, now - WINDOW), part.first_offset)
        while pos < part.next_offset:
            records = store.read(REGISTRY_TOPIC, part.partition, pos, READ_BATCH)
            if not records:
                break
            for r in records:
                try:
                    doc = json.loads(r.body)
                except ValueError:
                    continue
                if isinstance(doc, dict):
                    key = r.key or str((doc.get("info") or {}).get("id", ""))
                    latest[key] = doc
            pos = records[-1].offset + 1
    live = {}
    for key, doc in latest.items():
        try:
            expires = float(doc.get("ts", 0)) + float(doc.get("expiry", 30))
        except (TypeError, ValueError):
            continue
        if doc.get("op") != "down" and expires >= now and isinstance(doc.get("info"), dict):
            live[key] = doc
    return live


def services(store: Store, broker: Broker, now: float | None = None) -> list[ServiceNode]:
    """The registry's live services with the topics they consume and publish to."""
    nodes: dict[str, ServiceNode] = {}
    for key, doc in _heartbeats(store, broker, time.time() if now is None else now).items():
        info = doc["info"]
        node = nodes.setdefault(str(info.get("name", "?")), ServiceNode(str(info.get("name"))))
        node.instances.add(key)
        if info.get("version"):
            node.versions.add(str(info["version"]))
        for ep in info.get("endpoints") or []:
            meta = ep.get("metadata") or {}
            topic = str(meta.get("tidings.topic") or ep.get("subject") or "")
            if topic:
                node.consumes.setdefault(topic, set()).add(str(meta.get("tidings.kind", "event")))
                if meta.get("tidings.group"):
                    node.groups.setdefault(topic, set()).add(str(meta["tidings.group"]))
        outgoing = ((doc.get("stats") or {}).get("tidings") or {}).get("outgoing") or []
        for flow in outgoing:
            topic = str(flow.get("topic") or "")
            if topic:
                node.publishes.setdefault(topic, set()).add(_kind(str(flow.get("kind"))))
                node.rates[topic] = node.rates.get(topic, 0.0) + float(flow.get("rate") or 0.0)
    return sorted(nodes.values(), key=lambda n: n.name)


Rates = dict[tuple[str, str], float]  # (topic, group) -> acked messages/s


def group_rates(broker: Broker, nodes: list[ServiceNode], now: float | None = None) -> Rates:
    """The broker's ack rate of every (topic, group) the services consume through."""
    rates: Rates = {}
    for node in nodes:
        for topic, groups in node.groups.items():
            for group in groups:
                if (topic, group) in rates:
                    continue
                try:
                    rates[topic, group] = broker.group_info(topic, group).ack_rate
                except NotFound:
                    rates[topic, group] = 0.0
    return rates


def _rate(value: float) -> str:
    return f"{value:,.0f}/s" if value >= 100 else f"{value:.1f}/s"


def _label(x1: float, y1: float, x2: float, y2: float, rate: str, edge: str, over: str = "") -> str:
    """An edge's rate under its middle, and ``over`` it (the consumer's group)."""
    e = html.escape
    x, y = (x1 + x2) / 2, (y1 + y2) / 2
    out = (
        f"<text class='rate' data-edge='{e(edge)}' text-anchor='middle' x='{x:.0f}' "
        f"y='{y + 15:.0f}'>{e(rate)}</text>"
    )
    if over:
        out += (
            f"<text class='group' data-edge='{e(edge)}' text-anchor='middle' x='{x:.0f}' "
            f"y='{y - 6:.0f}'>{e(over)}</text>"
        )
    return out


def _box(x: float, y: float, w: float, label: str, cls: str, data: str) -> str:
    e = html.escape
    return (
        f"<g class='{cls}' data-name='{e(data)}'><rect x='{x}' y='{y - 14}' width='{w}' "
        f"height='28' rx='5'/><text x='{x + 10}' y='{y + 5}'>{e(label)}</text></g>"
    )


def _curve(x1: float, y1: float, x2: float, y2: float, kind: str, tip: str) -> str:
    mid = (x1 + x2) / 2
    cls = kind if kind in COLOURS else "event"
    return (
        f"<path class='{cls}' marker-end='url(#arrow-{cls})' d='M{x1},{y1} C{mid},{y1} "
        f"{mid},{y2} {x2 - 8},{y2}'><title>{html.escape(tip)}</title></path>"
    )


def graph(nodes: list[ServiceNode], rates: Rates | None = None) -> str:
    """Publishers | topics | consumers as an SVG, one curve per (service, topic, kind), each
    labelled with its rate (``rates``: the consumer groups' ack rates)."""
    rates = rates or {}
    publishers = [n for n in nodes if n.publishes]
    consumers = [n for n in nodes if n.consumes]
    topics = sorted({t for n in nodes for t in (*n.publishes, *n.consumes)})
    if not topics:
        return "<p>No service in the registry publishes or consumes anything yet.</p>"
    row, top = 44, 44
    height = top + row * max(len(publishers), len(topics), len(consumers), 1)
    xs, xt, xc, ws, wt = 10, 330, 690, 200, 240
    y_topic = {t: top + row * i for i, t in enumerate(topics)}
    parts = [
        f"<svg class='map' id='service-map' viewBox='0 0 900 {height}' width='900' "
        f"height='{height}' role='img' aria-label='services and their topics'><defs>"
    ]
    for kind, colour in COLOURS.items():
        parts.append(
            f"<marker id='arrow-{kind}' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
            f"markerHeight='7' orient='auto'><path d='M0,0 L10,5 L0,10 z' fill='{colour}' "
            "stroke='none'/></marker>"
        )
    parts.append("</defs>")
    parts.append(
        "<text x='10' y='16' opacity='.7'>publishers</text><text x='330' y='16' "
        "opacity='.7'>topics</text><text x='690' y='16' opacity='.7'>consumers</text>"
    )
    labels: list[str] = []
    for i, n in enumerate(publishers):
        y = top + row * i
        for topic, kinds in sorted(n.publishes.items()):
            rate = n.rates.get(topic, 0.0)
            for kind in sorted(kinds):
                tip = f"{n.name} {kind} to {topic} ({rate:.2f}/s)"
                parts.append(_curve(xs + ws, y, xt, y_topic[topic], kind, tip))
            labels.append(_label(xs + ws, y, xt, y_topic[topic], _rate(rate), f"{n.name}>{topic}"))
    for i, n in enumerate(consumers):
        y = top + row * i
        for topic, kinds in sorted(n.consumes.items()):
            groups = sorted(n.groups.get(topic, ()))
            acked = sum(rates.get((topic, g), 0.0) for g in groups)
            tip = f"{n.name} handles {topic}"
            if groups:
                tip += f" as {', '.join(groups)}: {acked:.2f} acked/s"
                edge = f"{topic}>{n.name}"
                over = ", ".join(groups)
                labels.append(_label(xt + wt, y_topic[topic], xc, y, _rate(acked), edge, over))
            for kind in sorted(kinds):
                parts.append(_curve(xt + wt, y_topic[topic], xc, y, kind, tip))
    parts.extend(labels)  # over the curves
    for i, n in enumerate(publishers):
        parts.append(_box(xs, top + row * i, ws, f"{n.name} ({len(n.instances)})", "svc", n.name))
    for topic, y in y_topic.items():
        link = f"/topics/{quote(topic, safe='')}"
        parts.append(f"<a href='{html.escape(link)}'>{_box(xt, y, wt, topic, 'topic', topic)}</a>")
    for i, n in enumerate(consumers):
        parts.append(_box(xc, top + row * i, ws, f"{n.name} ({len(n.instances)})", "svc", n.name))
    parts.append("</svg>")
    return "".join(parts)


def _flows(flows: dict[str, set[str]]) -> str:
    return "<br>".join(
        f"{html.escape('/'.join(sorted(kinds)))} "
        f"<a href='/topics/{quote(t, safe='')}'>{html.escape(t)}</a>"
        for t, kinds in sorted(flows.items())
    )


def services_routes(server: BrokerServer) -> list[BaseRoute]:
    async def page(request: Request) -> Response:
        async def render(user: User | None) -> Response:
            access.require_monitor(user, request)
            broker = server.runtime.broker
            nodes = services(server.store, broker)
            rows = [
                [html.escape(n.name), str(len(n.instances)),
                 html.escape(", ".join(sorted(n.versions)) or "-"), _flows(n.publishes),
                 _flows(n.consumes)]
                for n in nodes
            ]  # fmt: skip
            legend = "".join(f"<span style='background:{c}'></span>{k}" for k, c in COLOURS.items())
            body = (
                "<p>Live services of the registry (their last heartbeat), what they publish "
                "and what they consume. On each edge, messages/s: as the publisher's heartbeat "
                "counts them, and acked by the consumer's group as the broker counts them; "
                f"the page refreshes itself.</p><p class='legend'>{legend}</p>"
                f"<div id='services' data-live>{graph(nodes, group_rates(broker, nodes))}"
                + _table(["service", "instances", "versions", "publishes", "consumes"], rows)
                + "</div>"
            )
            return _page("Services", body, STYLE)

        return await guard(server, request, render)

    return [Route("/services", page)]
