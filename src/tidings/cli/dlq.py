"""``tidings dlq list|replay``: inspect dead-letter topics and move their messages back.

Replay reads a dead-letter topic through the group ``tidings-replay``, republishes each
message to the topic named in its ``tidings-dlq-topic`` header (without the ``tidings-dlq-*``
headers, with the message id ``replay-<dead letter id>``) and acknowledges it only after the
broker confirmed the republish, so a replay that is interrupted resumes where it stopped,
loses nothing and republishes nothing twice (within the origin's dedup window).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import headers as h
from ..errors import BadRequest, NotFound
from ..model import Outgoing
from .connection import client_for
from .output import JsonOpt, UrlOpt, body_text, console, err_console, show, state, table

app = typer.Typer(
    help="""Inspect dead-letter topics and replay their messages.

Example:

\b
    tidings dlq list
    tidings dlq replay order.refunded.payment.dlq
""",
    no_args_is_help=True,
)

REPLAY_GROUP = "tidings-replay"
SUFFIX = ".dlq"


def _replay_lag(client, topic: str, total: int) -> int:
    try:
        return client.group_info(topic, REPLAY_GROUP).lag
    except NotFound:
        return total


@app.command(
    "list",
    help="""List dead-letter topics, or (given one) the messages in it with their reasons.

Example:

\b
    tidings dlq list
    tidings dlq list order.refunded.payment.dlq --limit 20 --json
""",
)
def list_(
    ctx: typer.Context,
    topic: Annotated[str | None, typer.Argument(help="A dead-letter topic to look into.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many messages.")] = 50,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    with client_for(st) as client:
        if topic is None:
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
            return
        data = _peek(client, topic, limit)
    cols = ["offset", "key", "origin", "group", "reason", "deliveries", "error", "body"]
    rows = [
        (d["offset"], d["key"], d["origin"], d["group"], d["reason"], d["deliveries"],
         d["error"], d["body"][:60])
        for d in data
    ]  # fmt: skip
    show(st, data, lambda: table(f"{topic}: {len(data)} message(s)", cols, rows))


def _peek(client, topic: str, limit: int) -> list[dict[str, Any]]:
    """Read up to ``limit`` dead letters through a throw-away group (nothing is acked)."""
    client.topic_info(topic)  # NotFound with a clear message if there is no such topic
    group = "tidings-cli-peek"
    out: list[dict[str, Any]] = []
    sub = client.subscribe(topic, group, start="earliest", prefetch=min(limit, 100), lease=30)
    try:
        while len(out) < limit:
            msg = sub.next(timeout=0.5)
            if msg is None:
                break
            hd = msg.headers
            out.append({
                "offset": msg.offset, "id": msg.id, "key": msg.key,
                "origin": hd.get(h.DLQ_TOPIC), "group": hd.get(h.DLQ_GROUP),
                "reason": hd.get(h.DLQ_REASON), "deliveries": hd.get(h.DLQ_DELIVERIES),
                "error": hd.get(h.DLQ_ERROR), "headers": dict(hd), "body": body_text(msg.body),
            })  # fmt: skip
    finally:
        sub.close()
        client.delete_group(topic, group)
    return out


def replay_message(msg) -> tuple[str, Outgoing]:
    """Where a dead letter goes back to, and the message to publish there."""
    origin = msg.headers.get(h.DLQ_TOPIC)
    if not origin:
        raise BadRequest(
            f"message {msg.id} at offset {msg.offset} has no {h.DLQ_TOPIC} header: "
            "it is not a dead letter, so it has no origin to go back to"
        )
    headers = {k: v for k, v in msg.headers.items() if not k.startswith("tidings-dlq-")}
    headers["tidings-replayed-from"] = msg.topic
    # A stable id per dead letter: a replay retried after a crash is dropped by the broker.
    return origin, Outgoing(msg.body, msg.key, headers, f"replay-{msg.id}")


@app.command(
    "replay",
    help="""Move the messages of a dead-letter topic back to their origin topic.

Each message is acknowledged only after its republish is confirmed, so an interrupted replay
resumes where it stopped; its message id is 'replay-<dead letter id>', so a message that was
republished but not yet acknowledged is dropped by the broker the second time. The replayed
message reaches every group of the origin topic.

Example:

\b
    tidings dlq replay order.refunded.payment.dlq --limit 100
""",
)
def replay(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Dead-letter topic to replay.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Replay at most this many.")] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    replayed = already = 0
    targets: dict[str, int] = {}
    with client_for(st) as client:
        info = client.topic_info(topic)
        total = _replay_lag(client, topic, info.messages)
        if limit is not None:
            total = min(total, limit)
        sub = client.subscribe(
            topic, REPLAY_GROUP, start="earliest", prefetch=100, lease=60, max_deliveries=0
        )
        progress = Progress(
            TextColumn("replaying {task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=err_console(), disable=st.json,
        )  # fmt: skip
        try:
            with progress:
                task = progress.add_task(topic, total=total)
                while (limit is None or replayed + already < limit) and total > 0:
                    msg = sub.next(timeout=1.0)
                    if msg is None:
                        break
                    origin, out = replay_message(msg)
                    [receipt] = client.publish_many(origin, [out])
                    msg.ack()  # only now: the republish is confirmed (or was, earlier)
                    if receipt.duplicate:
                        already += 1
                    else:
                        replayed += 1
                        targets[origin] = targets.get(origin, 0) + 1
                    progress.advance(task)
        finally:
            sub.close()
    data = {"topic": topic, "replayed": replayed, "already_replayed": already, "to": targets}
    if st.json:
        show(st, data, None)
        return
    out = console()
    dest = ", ".join(f"{n} to {t}" for t, n in targets.items()) or "nothing"
    out.print(f"replayed {replayed} message(s): {dest}")
    if already:
        out.print(f"{already} message(s) had been replayed before (dropped as duplicates)")
