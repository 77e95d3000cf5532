"""``tidings pub``: publish one message, a body N times, or every line of stdin."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Annotated

import typer

from ..errors import Forbidden, NotFound
from ..model import Outgoing, Receipt
from .connection import client_for
from .output import JsonOpt, UrlOpt, console, fail, parse_pairs, state, table

HELP = """Publish messages to TOPIC.

BODY is the message body; with '-' every line of stdin is one message. Bodies are bytes to
the broker; one that looks like JSON (starts with '{' or '[') is checked first and refused,
saying what is wrong, when it is not valid JSON (--raw sends it anyway; --json-body checks
any body). A topic that does not exist yet is created (one partition; use 'tidings topic
create' for more). The command prints one receipt per message (partition, offset, id, and
whether the broker dropped it as a duplicate of an earlier --msg-id).

Example:

\b
    tidings pub orders '{"order": 42}' --key order-42 --header type=created --msg-id o-42

\b
    seq 1 100 | tidings pub numbers - --json
"""

BATCH = 500


def json_problem(text: str, require: bool) -> str | None:
    """What is wrong with ``text`` as JSON, or None when it is fine. Only text that looks like
    a JSON object or array (it starts with '{' or '[') is checked, unless ``require``."""
    if not require and not text.lstrip().startswith(("{", "[")):
        return None
    try:
        json.loads(text)
    except ValueError as exc:
        return str(exc)
    return None


def _checked(text: str, require: bool, where: str) -> bytes:
    problem = json_problem(text, require)
    if problem is not None:
        if require:
            raise fail(f"{where} is not JSON (--json-body): {problem}")
        raise fail(
            f"{where} looks like JSON but is not valid: {problem}. Fix it, or pass --raw to "
            "send it as it is (bodies are bytes to the broker)"
        )
    return text.encode()


def _bodies(body: str | None, count: int, check: bool, require: bool) -> Iterator[bytes]:
    if body == "-":
        for n, line in enumerate(sys.stdin, start=1):
            line = line.rstrip("\n")
            if line:
                yield _checked(line, require, f"stdin line {n}") if check else line.encode()
        return
    data = _checked(body or "", require, "the body") if check else (body or "").encode()
    for _ in range(count):
        yield data


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
    json_body: Annotated[
        bool, typer.Option("--json-body", help="The body must be JSON (checked before sending).")
    ] = False,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Send the body as it is, without checking JSON-like bodies."),
    ] = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    if body is None and sys.stdin.isatty():
        raise fail("give a BODY, or '-' to read messages from stdin")
    if raw and json_body:
        raise fail("--raw and --json-body contradict each other: give one")
    bodies = _bodies("-" if body is None else body, count, not raw, json_body)
    if body != "-" and body is not None:
        bodies = iter(list(bodies))  # a bad body is refused before connecting
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
        for n, data in enumerate(bodies, start=1):
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
