"""``tidings dlq list|redrive|purge``: a group's dead letters, and sending them back.

``list TOPIC --group G`` shows the dead letters of group G that wait (reason, deliveries,
error, body), read through ``client.dead_letters`` without consuming anything. ``redrive``
sends them back to that group only, under their original message id and headers (the
topic's other groups do not see them again); ``purge`` drops them for good. ``replay`` (the
older, topic-wide move) lives in :mod:`.dlq_replay`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import headers as h
from ..client import Client
from ..errors import BadRequest, NotFound
from ..model import DeadLetter
from .connection import client_for
from .output import CliState, JsonOpt, UrlOpt, body_text, console, fail, show, state, table

app = typer.Typer(
    help="""Inspect a group's dead letters, redrive them to that group, or purge them.

Example:

\b
    tidings dlq list
    tidings dlq list orders --group billing
    tidings dlq redrive orders --group billing
""",
    no_args_is_help=True,
)

REPLAY_GROUP = h.REPLAY_GROUP
SUFFIX = ".dlq"

GroupOpt = Annotated[
    str | None,
    typer.Option("--group", "-g", help="The group whose dead letters (default: from a .dlq name)."),
]


def _replay_lag(client: Client, topic: str, total: int) -> int:
    try:
        return client.group_info(topic, REPLAY_GROUP).lag
    except NotFound:
        return total


def _origin(client: Client, topic: str, group: str | None) -> tuple[str, str]:
    """The (origin topic, group) a command is about: ``TOPIC --group G``, or a dead-letter
    topic's name ``<topic>.<group>.dlq``. Anything else is refused with what to type."""
    if group is not None:
        return topic, group
    if topic.endswith(SUFFIX):
        origin, _, name = topic[: -len(SUFFIX)].rpartition(".")
        if origin and name:
            return origin, name
    try:
        groups = [g.name for g in client.topic_info(topic).groups]
    except NotFound:
        groups = []
    hint = f"; its groups: {', '.join(groups)}" if groups else ""
    example = groups[0] if groups else "GROUP"
    raise BadRequest(
        f"{topic!r} is not a dead-letter topic (<topic>.<group>.dlq): name the group whose dead "
        f"letters you want, e.g. tidings dlq list {topic} --group {example}{hint}"
    )


def _row(d: DeadLetter, topic: str, group: str) -> dict[str, Any]:
    return {
        "id": d.id, "msg_id": d.msg_id, "key": d.key, "origin": topic, "group": group,
        "reason": d.reason, "deliveries": d.deliveries, "error": d.error,
        "dead_lettered_at": d.dead_lettered_at, "partition": d.partition, "offset": d.offset,
        "headers": d.headers, "body": body_text(d.body),
    }  # fmt: skip


def _nothing_yet(client: Client, topic: str, group: str) -> str:
    """Why a group has no dead letters to show: none died yet, or all went back."""
    spec = client.group_info(topic, group).spec
    dlq = (spec.dead_letter_topic if spec is not None else None) or h.dead_letter_topic(
        topic, group
    )
    try:
        client.topic_info(dlq)
    except NotFound:
        return (
            f"nothing was dead-lettered yet by group {group!r} of {topic!r} "
            f"({dlq} is created with the first dead letter)"
        )
    return f"no dead letters wait for group {group!r} of {topic!r} (all were redriven or purged)"


@app.command(
    "list",
    help="""List dead-letter topics, or the dead letters of one group with their reasons.

Example:

\b
    tidings dlq list
    tidings dlq list orders --group billing --limit 20 --json
    tidings dlq list orders.billing.dlq
""",
)
def list_(
    ctx: typer.Context,
    topic: Annotated[
        str | None, typer.Argument(help="The group's topic (with --group), or a .dlq topic.")
    ] = None,
    group: GroupOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many messages.")] = 50,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    with client_for(st) as client:
        if topic is None:
            if group is not None:
                raise fail("--group needs the group's topic: tidings dlq list TOPIC --group G")
            _list_topics(st, client)
            return
        origin, name = _origin(client, topic, group)
        letters = client.dead_letters(origin, name, limit=limit)
        data = [_row(d, origin, name) for d in letters]
        if not data and not st.json:
            console().print(_nothing_yet(client, origin, name))
            return
    cols = ["id", "key", "reason", "deliveries", "error", "body"]
    rows = [(d["id"], d["key"], d["reason"], d["deliveries"], d["error"], d["body"][:60])
            for d in data]  # fmt: skip
    title = f"{origin} / {name}: {len(data)} dead letter(s)"
    show(st, data, lambda: table(title, cols, rows))


def _list_topics(st: CliState, client: Client) -> None:
    names = sorted(s.name for s in client.list_topics() if s.name.endswith(SUFFIX))
    data = []
    for name in names:
        info = client.topic_info(name)
        origin, _, group = name[: -len(SUFFIX)].rpartition(".")
        data.append({
            "topic": name, "origin": origin, "group": group, "messages": info.messages,
            "pending_replay": _replay_lag(client, name, info.messages),
        })  # fmt: skip
    cols = ["dead-letter topic", "origin", "group", "messages", "pending replay"]
    rows = [tuple(d.values()) for d in data]
    show(st, data, lambda: table(None, cols, rows))


@app.command(
    "redrive",
    help="""Send a group's dead letters back to that group only.

Each goes back under its original message id and headers, as a fresh delivery (its delivery
count starts over); the topic's other groups do not receive it again. Without --id every
waiting dead letter goes (or the oldest --limit); a redriven one is not listed nor redriven
again.

Example:

\b
    tidings dlq redrive orders --group billing --id 0f3a9c... --id 0f3a9d...
    tidings dlq redrive orders --group billing
""",
)
def redrive(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="The group's topic (or its .dlq topic).")],
    group: GroupOpt = None,
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="Only this dead letter (repeatable).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Redrive at most this many.")] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    with client_for(st) as client:
        origin, name = _origin(client, topic, group)
        done = client.redrive_ids(origin, name, ids or None, limit)
        if not done and not st.json:
            console().print(_nothing_yet(client, origin, name))
            return
    data = {"topic": origin, "group": name, "redriven": len(done), "ids": done}
    if st.json:
        show(st, data, None)
        return
    console().print(
        f"redrove {len(done)} dead letter(s) to group {name!r} of {origin!r} "
        "(only that group receives them)"
    )


@app.command(
    "purge",
    help="""Drop a group's dead letters for good (all, the --id ones, or the oldest --limit).

Example:

\b
    tidings dlq purge orders --group billing --yes
""",
)
def purge(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="The group's topic (or its .dlq topic).")],
    group: GroupOpt = None,
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="Only this dead letter (repeatable).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Purge at most this many.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    with client_for(st) as client:
        origin, name = _origin(client, topic, group)
        if not yes:
            if st.json or not console().is_terminal:
                raise fail(f"purging loses the dead letters of group {name!r}: add --yes")
            typer.confirm(f"Drop the dead letters of group {name!r} of {origin!r}?", abort=True)
        n = client.discard_dead_letters(origin, name, ids or None, limit)
    data = {"topic": origin, "group": name, "purged": n}
    show(st, data, lambda: f"purged {n} dead letter(s) of group {name!r} of {origin!r}")


from . import dlq_replay as _replay  # noqa: E402,F401 - registers 'tidings dlq replay'
