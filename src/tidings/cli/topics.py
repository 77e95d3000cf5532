"""``tidings topic create|list|info|delete``: topic administration."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Group

from ..model import TopicInfo, TopicSpec
from .connection import client_for
from .output import JsonOpt, UrlOpt, fail, show, state, table

app = typer.Typer(
    help="""Create, list, inspect and delete topics.

Example:

\b
    tidings topic create orders --partitions 4 --max-age 86400 --dedup-window 300
""",
    no_args_is_help=True,
)

GROUP_COLUMNS = ["group", "mode", "members", "ready", "in flight", "delayed", "lag", "dead"]


def group_rows(info: TopicInfo) -> list[tuple[Any, ...]]:
    return [
        (g.name, g.mode, g.members, g.ready, g.in_flight, g.delayed, g.lag, g.dead_lettered)
        for g in info.groups
    ]


@app.command(
    "create",
    help="""Create a topic. An existing one is accepted if the options given match it and refused
if they differ (--no-exist-ok refuses it always).

Example:

\b
    tidings topic create orders --partitions 4 --retention work-queue --max-bytes 1000000000
""",
)
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Topic name.")],
    partitions: Annotated[
        int | None, typer.Option(min=1, help="Number of partitions (a new topic: 1).")
    ] = None,
    retention: Annotated[
        str | None, typer.Option(help="limits or work-queue (a new topic: limits).")
    ] = None,
    max_age: Annotated[float | None, typer.Option(help="Drop messages older than this, s.")] = None,
    max_bytes: Annotated[int | None, typer.Option(help="Keep at most this many bytes.")] = None,
    max_messages: Annotated[int | None, typer.Option(help="Keep at most this many.")] = None,
    overflow: Annotated[
        str | None,
        typer.Option(
            help="At a limit: drop-oldest or reject new messages (a new topic: drop-oldest)."
        ),
    ] = None,
    dedup_window: Annotated[
        float | None, typer.Option(help="Seconds a producer msg id is remembered (0: off).")
    ] = None,
    max_message_size: Annotated[int | None, typer.Option(help="Largest message, bytes.")] = None,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok/--no-exist-ok", help="An existing topic is not an error.")
    ] = True,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    options: dict[str, object] = {}
    for field, value in (
        ("retention", retention),
        ("overflow", overflow),
        ("max_age", max_age),
        ("max_bytes", max_bytes),
        ("max_messages", max_messages),
        ("dedup_window", dedup_window),
        ("max_message_size", max_message_size),
    ):
        if value is not None:
            options[field] = value
    with client_for(st) as client:
        spec = client.create_topic(name, partitions=partitions, exist_ok=exist_ok, **options)
    show(st, spec, lambda: table(f"topic {spec.name}", ["setting", "value"], _spec_rows(spec)))


def _spec_rows(spec: TopicSpec) -> list[tuple[str, Any]]:
    return [(f, getattr(spec, f)) for f in spec.__struct_fields__ if f != "name"]


@app.command(
    "list",
    help="""List topics with their partitions, retention and message counts.

Example:

\b
    tidings topic list --json
""",
)
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include temporary reply topics.")] = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    with client_for(st) as client:
        specs = [s for s in client.list_topics() if all_ or not s.temporary]
        infos = [client.topic_info(s.name) for s in sorted(specs, key=lambda s: s.name)]
    data: list[dict[str, Any]] = [
        {"name": i.name, "partitions": i.spec.partitions, "retention": i.spec.retention,
         "messages": i.messages, "bytes": i.bytes, "groups": [g.name for g in i.groups],
         "publish_rate": i.publish_rate}
        for i in infos
    ]  # fmt: skip
    columns = ["topic", "partitions", "retention", "messages", "bytes", "groups"]
    rows = [
        (d["name"], d["partitions"], d["retention"], d["messages"], d["bytes"],
         ", ".join(d["groups"]))
        for d in data
    ]  # fmt: skip
    show(st, data, lambda: table(None, columns, rows))


@app.command(
    "info",
    help="""Show a topic's settings, partitions and groups.

Example:

\b
    tidings topic info orders
""",
)
def info(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Topic name.")],
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    with client_for(st) as client:
        ti = client.topic_info(name)

    def render() -> Group:
        parts = [(p.partition, p.first_offset, p.next_offset, p.bytes) for p in ti.partitions]
        return Group(
            table(f"topic {ti.name}: {ti.messages:,} messages", ["setting", "value"],
                  _spec_rows(ti.spec)),
            table("partitions", ["partition", "first", "next", "bytes"], parts),
            table("groups", GROUP_COLUMNS, group_rows(ti)),
        )  # fmt: skip

    show(st, ti, render)


@app.command(
    "delete",
    help="""Delete a topic, its messages and its groups.

Example:

\b
    tidings topic delete orders --yes
""",
)
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Topic name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    if not yes:
        if not sys.stdin.isatty():
            raise fail(f"deleting {name!r} loses its messages: add --yes to confirm")
        typer.confirm(f"Delete topic {name!r} with all its messages and groups?", abort=True)
    with client_for(st) as client:
        client.delete_topic(name)
    show(st, {"deleted": name}, lambda: f"deleted topic {name}")
