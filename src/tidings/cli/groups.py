"""``tidings group list|info|reset``: consumer group administration."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ..model import GroupInfo
from .connection import client_for
from .output import JsonOpt, UrlOpt, show, state, table

app = typer.Typer(
    help="""List, inspect and reset consumer groups.

Example:

\b
    tidings group info orders billing
""",
    no_args_is_help=True,
)

COLUMNS = [
    "topic", "group", "mode", "members", "ready", "in flight", "delayed", "lag", "dead",
    "deliver/s", "ack/s", "oldest (s)",
]  # fmt: skip


def rows_of(groups: list[GroupInfo]) -> list[tuple[Any, ...]]:
    return [
        (g.topic, g.name, g.mode, g.members, g.ready, g.in_flight, g.delayed, g.lag,
         g.dead_lettered, g.deliver_rate, g.ack_rate, g.oldest_ready_age)
        for g in groups
    ]  # fmt: skip


@app.command(
    "list",
    help="""List consumer groups (of one topic, or of every topic) with their backlog.

Example:

\b
    tidings group list orders --json
""",
)
def list_(
    ctx: typer.Context,
    topic: Annotated[str | None, typer.Argument(help="Only this topic's groups.")] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    with client_for(st) as client:
        names = (
            [topic] if topic else sorted(s.name for s in client.list_topics() if not s.temporary)
        )
        groups = [g for name in names for g in client.topic_info(name).groups]
    data = [{k: v for k, v in _plain(g).items() if k != "spec"} for g in groups]
    show(st, data, lambda: table(None, COLUMNS, rows_of(groups)))


def _plain(g: object) -> dict[str, Any]:
    from .output import to_data

    data: dict[str, Any] = to_data(g)
    return data


@app.command(
    "info",
    help="""Show one group's backlog, rates and settings.

Example:

\b
    tidings group info orders billing --json
""",
)
def info(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Topic.")],
    group: Annotated[str, typer.Argument(help="Group.")],
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    with client_for(st) as client:
        gi = client.group_info(topic, group)

    def render() -> Table:
        rows = [(k, v) for k, v in _plain(gi).items() if k != "spec"]
        if gi.spec is not None:
            rows += [(f"spec.{k}", v) for k, v in _plain(gi.spec).items()]
        return table(f"group {gi.name} on {gi.topic}", ["field", "value"], rows)

    show(st, gi, render)


@app.command(
    "reset",
    help="""Move a group's position: earliest, latest, or an offset.

Example:

\b
    tidings group reset orders billing --to earliest
""",
)
def reset(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Topic.")],
    group: Annotated[str, typer.Argument(help="Group.")],
    to: Annotated[str, typer.Option(help="earliest, latest or an offset.")] = "earliest",
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    position: str | int = int(to) if to.isdigit() else to
    with client_for(st) as client:
        client.reset_group(topic, group, position)
        gi = client.group_info(topic, group)
    show(st, gi, lambda: f"group {group} on {topic} reset to {to}: lag {gi.lag:,}")
