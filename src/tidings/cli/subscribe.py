"""``tidings sub``: read messages as a member of a consumer group, acknowledging each (or
not: ``--no-ack`` leaves them to the group, which gets them back when the command exits)."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer
from rich.text import Text

from ..model import Message
from .connection import client_for
from .output import JsonOpt, UrlOpt, body_text, console, print_json, state

HELP = """Consume messages from TOPIC as a member of GROUP and print them.

Stops after --count messages, or after --timeout seconds without a message (default: run
until Ctrl-C). With --json every message is one JSON object per line.

Example:

\b
    tidings sub orders --group billing --count 10 --timeout 5 --json
"""


def message_data(msg: Message) -> dict[str, Any]:
    return {
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "id": msg.id,
        "msg_id": msg.msg_id,
        "key": msg.key,
        "headers": dict(msg.headers),
        "body": body_text(msg.body),
        "timestamp": msg.timestamp,
        "delivery_count": msg.delivery_count,
    }


def waiting_line(topic: str, group: str, seen: int, count: int | None) -> str:
    """What an idle ``tidings sub`` without --timeout says on stderr (once)."""
    got = f"{seen} of {count} received" if count is not None else f"{seen} received"
    return (
        f"waiting for messages on {topic} (group {group}; {got}); Ctrl-C to stop, or give "
        "--timeout S"
    )


def sub(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Topic to consume.")],
    group: Annotated[str, typer.Option("--group", "-g", help="Consumer group to join.")],
    mode: Annotated[str, typer.Option(help="shared (work queue) or ordered.")] = "shared",
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many messages.")] = None,
    ack: Annotated[
        bool, typer.Option("--ack/--no-ack", help="Acknowledge each message (default).")
    ] = True,
    timeout: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without a message.")
    ] = None,
    start: Annotated[
        str, typer.Option(help="Where a new group starts: earliest, latest or an offset.")
    ] = "earliest",
    lease: Annotated[float, typer.Option(help="Visibility timeout, seconds.")] = 30.0,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    position: str | int = int(start) if start.isdigit() else start
    out = console()
    seen = 0
    said_waiting = False
    with client_for(st) as client:
        subscription = client.subscribe(
            topic,
            group,
            mode=mode,  # type: ignore[arg-type]  # a str here: GroupSpec refuses others
            lease=lease,
            start=position,
            prefetch=min(count or 100, 100),
        )
        try:
            idle_since = time.monotonic()
            while count is None or seen < count:
                wait = (
                    None if timeout is None else max(0.0, timeout - (time.monotonic() - idle_since))
                )
                msg = subscription.next(timeout=wait if wait is not None else 1.0)
                if msg is None:
                    if timeout is not None and time.monotonic() - idle_since >= timeout:
                        break
                    if timeout is None and not said_waiting:  # idle for a second: say so
                        said_waiting = True
                        print(waiting_line(topic, group, seen, count), file=sys.stderr, flush=True)
                    continue
                idle_since = time.monotonic()
                seen += 1
                if st.json:
                    print_json(message_data(msg.message), indent=None)
                else:
                    key = f" key={msg.key}" if msg.key else ""
                    where = f"{msg.topic}/{msg.partition}@{msg.offset}{key}"
                    out.print(
                        Text.assemble(
                            (f"{where} deliveries={msg.delivery_count} ", "dim"),
                            body_text(msg.body),
                        )
                    )
                if ack:
                    msg.ack()
        finally:
            subscription.close()
    if not st.json:
        out.print(f"[dim]{seen} message(s){' acknowledged' if ack else ''}[/]", markup=True)


def register(app: typer.Typer) -> None:
    app.command("sub", help=HELP)(sub)
