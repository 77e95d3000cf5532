"""``tidings stats``: a live view of every topic and group (depth, in-flight, delayed, lag,
dead letters, rates); ``--once`` prints one snapshot."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.text import Text

from ..client import Client
from .connection import client_for
from .output import JsonOpt, UrlOpt, console, fmt, print_json, state, table

HELP = """Show depth, in-flight, delayed, lag, dead letters and rates per topic and group.

Refreshes every --interval seconds until Ctrl-C; --once prints one snapshot and exits.
When the output is not a terminal (a pipe, a file, a script) one snapshot is printed, as with
--once, unless --json asks for one JSON line per interval.

Example:

\b
    tidings stats
    tidings stats orders payments --once --json
"""

TOPIC_COLUMNS = ["topic", "partitions", "messages", "bytes", "publish/s"]
GROUP_COLUMNS = [
    "topic", "group", "mode", "members", "ready", "in flight", "delayed", "lag", "dead",
    "deliver/s", "ack/s", "oldest (s)",
]  # fmt: skip


def snapshot(client: Client, topics: list[str] | None, include_all: bool) -> dict[str, Any]:
    if topics:
        names = topics
    else:
        specs = client.list_topics()
        names = sorted(s.name for s in specs if include_all or not s.temporary)
    out: list[dict[str, Any]] = []
    for name in names:
        info = client.topic_info(name)
        out.append({
            "topic": info.name, "partitions": info.spec.partitions, "messages": info.messages,
            "bytes": info.bytes, "publish_rate": info.publish_rate,
            "groups": [
                {"group": g.name, "mode": g.mode, "members": g.members, "ready": g.ready,
                 "in_flight": g.in_flight, "delayed": g.delayed, "lag": g.lag,
                 "dead_lettered": g.dead_lettered, "deliver_rate": g.deliver_rate,
                 "ack_rate": g.ack_rate, "oldest_ready_age": g.oldest_ready_age}
                for g in info.groups
            ],
        })  # fmt: skip
    return {"time": time.time(), "topics": out}


def render(snap: dict[str, Any], width: int | None = None) -> Group:
    """Tables of the snapshot; where a table would not fit in ``width`` columns (its headers
    were squeezed to "m…"), one line per row instead, each value named."""
    topics = snap["topics"]
    trows = [
        (t["topic"], t["partitions"], t["messages"], t["bytes"], t["publish_rate"]) for t in topics
    ]
    grows = [
        (t["topic"], g["group"], g["mode"], g["members"], g["ready"], g["in_flight"],
         g["delayed"], g["lag"], g["dead_lettered"], g["deliver_rate"], g["ack_rate"],
         g["oldest_ready_age"])
        for t in topics
        for g in t["groups"]
    ]  # fmt: skip
    parts: list[Any] = []
    for title, columns, rows in (
        ("topics", TOPIC_COLUMNS, trows),
        ("groups", GROUP_COLUMNS, grows),
    ):
        if width is not None and table_width(columns, rows) > width:
            parts.append(row_lines(title, columns, rows, width))
        else:
            parts.append(table(title, columns, rows))
    return Group(*parts)


def table_width(columns: list[str], rows: list[tuple[Any, ...]]) -> int:
    """Columns a rich table of these rows needs without squeezing (borders and padding)."""
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(fmt(v))) for w, v in zip(widths, row, strict=True)]
    return sum(widths) + 3 * len(columns) + 1


def row_lines(title: str, columns: list[str], rows: list[tuple[Any, ...]], width: int) -> Text:
    """``title`` then a block per row: the first columns name it, the rest follow as "name
    value" pairs, wrapped to ``width`` between pairs, never inside one."""
    key = 2 if columns[1] == "group" else 1  # topic (and group) name the row
    lines = [title]
    for row in rows:
        line = "  " + " / ".join(fmt(v) for v in row[:key]) + ":"
        for column, value in zip(columns[key:], row[key:], strict=True):
            pair = f"{column} {fmt(value)}"
            if len(line) + 2 + len(pair) > width and line.strip():
                lines.append(line)
                line = "    " + pair
            else:
                line += (" " if line.endswith(":") else "  ") + pair
        lines.append(line)
    return Text("\n".join(lines), no_wrap=True, overflow="ignore")


def stats(
    ctx: typer.Context,
    topics: Annotated[list[str] | None, typer.Argument(help="Only these topics.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Refresh period, seconds.")] = 1.0,
    all_: Annotated[bool, typer.Option("--all", help="Include temporary topics.")] = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    once = once or not (st.json or console().is_terminal)  # a live view needs a terminal
    with client_for(st) as client:
        if once:
            snap = snapshot(client, topics, all_)
            out = console()
            print_json(snap) if st.json else out.print(render(snap, out.width))
            return
        if st.json:  # one JSON document per line, every interval
            while True:
                print_json(snapshot(client, topics, all_), indent=None)
                time.sleep(interval)
        out = console()
        with Live(render(snapshot(client, topics, all_), out.width), console=out) as live:
            while True:
                time.sleep(interval)
                live.update(render(snapshot(client, topics, all_), out.width))


def register(app: typer.Typer) -> None:
    app.command("stats", help=HELP)(stats)
