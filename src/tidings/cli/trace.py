"""``tidings trace``: where a message went on the built-in broker (published, each delivery,
acked / nacked / lease expired / rejected / expired / dead-lettered), a whole conversation
by correlation id or W3C trace id, or a topic's events as they happen (``--follow``)."""

from __future__ import annotations

import datetime
import time
from typing import Annotated

import typer
from rich.table import Table

from ..trace import Trace, TraceEvent, describe
from .connection import client_for
from .output import JsonOpt, UrlOpt, console, fail, fmt, print_json, state

HELP = """Show the path of a message, a conversation, or a topic's events, from the broker's
message trace (a broker started with --trace; docs/tracing.md).

MSG_ID is a broker message id or a producer msg_id. --conversation takes a correlation id
or a W3C trace id. --topic shows that topic's newest events (--topic '>' every topic);
--follow keeps printing new ones until Ctrl-C.

Example:

\b
    tidings broker --trace 'orders,orders.>' &
    tidings trace order-17
    tidings trace --conversation 4bf92f3577b34da6a3ce929d0e0e4736
    tidings trace --topic orders --follow --json
"""

COLUMNS = ["time", "event", "where", "group", "member", "deliveries", "detail"]


def _when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


def timeline(title: str | None, events: list[TraceEvent]) -> Table:
    """The events as a table whose last column (the details) wraps instead of squeezing."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in COLUMNS:
        if col == "detail":
            t.add_column(col, overflow="fold", ratio=1)
        else:
            t.add_column(col, justify="right" if col == "deliveries" else "left", no_wrap=True)
    for e in events:
        where = f"{e.topic}/{e.partition}@{e.offset}"
        t.add_row(_when(e.time), e.event, where, fmt(e.group), fmt(e.member),
                  fmt(e.deliveries), describe(e))  # fmt: skip
    return t


def _by_message(events: list[TraceEvent]) -> dict[str, list[TraceEvent]]:
    out: dict[str, list[TraceEvent]] = {}
    for e in events:
        out.setdefault(e.id, []).append(e)
    return out


def render(trace: Trace) -> None:
    out = console()
    for message_id, events in _by_message(trace.events).items():
        out.print(timeline(f"message {message_id}", events))
    for message_id, events in _by_message(trace.related).items():
        out.print(timeline(f"related: message {message_id}", events))
    if trace.dropped:
        out.print(f"({trace.dropped:,} older events fell off the trace ring)")


def trace(
    ctx: typer.Context,
    message: Annotated[
        str | None, typer.Argument(metavar="MSG_ID", help="A message id or producer msg_id.")
    ] = None,
    conversation: Annotated[
        str | None,
        typer.Option("--conversation", "-c", help="A correlation id or W3C trace id."),
    ] = None,
    topic: Annotated[
        str | None, typer.Option("--topic", "-t", help="A topic's events ('>': every topic).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events (with --topic).")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Events at most.")] = 1000,
    interval: Annotated[float, typer.Option(min=0.05, help="--follow's poll period, s.")] = 0.5,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    if follow and topic is None and message is None and conversation is None:
        topic = ">"
    if sum(x is not None for x in (message, conversation, topic)) != 1:
        raise fail("give a MSG_ID, --conversation ID or --topic TOPIC (exactly one)")
    if follow and topic is None:
        raise fail("--follow follows a topic: use it with --topic TOPIC (or '>')")
    with client_for(st) as client:
        if topic is None:
            found = client.trace(message, conversation=conversation)
            print_json(found) if st.json else render(found)
            return
        after = -1  # the newest events first, then (with --follow) what comes after them
        while True:
            page = client.trace(topic=topic, after=after, limit=limit)
            if st.json and follow:
                for e in page.events:
                    print_json(e, indent=None)
            elif st.json:
                print_json(page)
            elif page.events:
                console().print(timeline(None, page.events))
            after = page.last_seq
            if not follow:
                return
            if len(page.events) < limit:
                time.sleep(interval)


def register(app: typer.Typer) -> None:
    app.command("trace", help=HELP)(trace)
