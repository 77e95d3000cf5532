"""``tidings pub``: publish one message, a body N times, or every line of stdin."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Annotated

import typer

from ..errors import Forbidden, NotFound
from ..model import Outgoing, Receipt
from .connection import client_for
from .output import JsonOpt, UrlOpt, console, fail, parse_pairs, state, table

HELP = """Publish messages to TOPIC.

BODY is the message body; with '-' every line of stdin is one message. A topic that does
not exist yet is created (one partition; use 'tidings topic create' for more). The command prints
one receipt per message (partition, offset, id, and whether the broker dropped it as a
duplicate of an earlier --msg-id).

Example:

\b
    tidings pub orders '{"order": 42}' --key order-42 --header type=created --msg-id o-42

\b
    seq 1 100 | tidings pub numbers - --json
"""

BATCH = 500


def _bodies(body: str | None, count: int) -> Iterator[bytes]:
    if body == "-":
        for line in sys.stdin:
            line = line.rstrip("\n")
            if line:
                yield line.encode()
        return
    for _ in range(count):
        yield (body or "").encode()


def pub(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Topic to publish to.")],
    body: Annotated[
        str | None, typer.Argument(help="Message body, or '-' for one message per stdin line.")
    ] = None,
    key: Annotated[str | None, typer.Option(help="Message key (picks the partition).")] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="Header k=v (repeatable).")
    ] = None,
    count: Annotated[int, typer.Option(min=1, help="Publish BODY this many times.")] = 1,
    msg_id: Annotated[
        str | None,
        typer.Option(
            help="Producer message id for duplicate detection (with --count N: ID-1 ... ID-N)."
        ),
    ] = None,
    ttl: Annotated[float | None, typer.Option(help="Seconds until the message expires.")] = None,
    delay: Annotated[float | None, typer.Option(help="Seconds before it is delivered.")] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    if body is None and sys.stdin.isatty():
        raise fail("give a BODY, or '-' to read messages from stdin")
    headers = parse_pairs(header or [])
    receipts: list[Receipt] = []
    with client_for(st) as client:
        try:
            client.topic_info(topic)
        except NotFound:  # like the service framework: the first message creates the topic
            client.create_topic(topic, exist_ok=True)
        except Forbidden:  # a publish-only user may not read the topic: the publish says more
            pass
        batch: list[Outgoing] = []
        for n, data in enumerate(_bodies("-" if body is None else body, count), start=1):
            mid = msg_id if msg_id is None or count == 1 else f"{msg_id}-{n}"
            if body == "-" and msg_id is not None:
                mid = f"{msg_id}-{n}"
            batch.append(Outgoing(data, key, dict(headers), mid, ttl, delay))
            if len(batch) >= BATCH:
                receipts += client.publish_many(topic, batch)
                batch = []
        if batch:
            receipts += client.publish_many(topic, batch)
    if st.json:
        from .output import print_json

        print_json(
            {"topic": topic, "published": len(receipts), "receipts": receipts,
             "duplicates": sum(r.duplicate for r in receipts)}
        )  # fmt: skip
        return
    out = console()
    if len(receipts) <= 20:
        rows = [(r.partition, r.offset, r.id, r.duplicate) for r in receipts]
        out.print(table(None, ["partition", "offset", "id", "duplicate"], rows))
    dups = sum(r.duplicate for r in receipts)
    out.print(
        f"published {len(receipts) - dups} message(s) to {topic}"
        + (f"; {dups} duplicate(s) dropped by the broker" if dups else "")
    )


def register(app: typer.Typer) -> None:
    app.command("pub", help=HELP)(pub)
