"""``tidings demo``: the order-refund story (see :mod:`tidings.demo`)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .output import JsonOpt, UrlOpt, console, print_json, state, user_errors

HELP = """Play the order-refund story on a broker started for it (or --url).

An order service publishes a burst of refund events; inventory, payment (two workers) and
notification consume them in their own groups at their own pace; a payment worker hangs and
is killed, and its refunds are redelivered to its sibling; malformed events are dead-lettered;
duplicates are dropped by the broker or skipped by idempotent consumers; a request asks
payment for a refund's status. The summary proves every service handled every refund exactly
once in effect, and the exit code is 1 if it does not.

Example:

\b
    tidings demo
    tidings demo --orders 2000 --json
"""


def demo(
    ctx: typer.Context,
    orders: Annotated[int, typer.Option(min=1, help="Refunds in the burst.")] = 10_000,
    malformed: Annotated[int, typer.Option(min=0, help="Malformed events to publish.")] = 3,
    resend: Annotated[
        int, typer.Option(min=0, help="Refunds re-sent with the same msg_id (twice).")
    ] = 100,
    lease: Annotated[float, typer.Option(min=0.5, help="Visibility timeout, seconds.")] = 2.0,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    from ..demo import DemoOptions, render_summary, run_demo

    st = state(ctx, url, as_json)
    opts = DemoOptions(
        orders=orders, malformed=malformed, resend=min(resend, orders), lease=lease,
        url=url, quiet=st.json, interactive=sys.stdout.isatty(),
    )  # fmt: skip
    with user_errors():
        summary = run_demo(opts)
    if st.json:
        print_json(summary)
    else:
        render_summary(summary, console())
    raise typer.Exit(0 if summary["reconciled"] else 1)


def register(app: typer.Typer) -> None:
    app.command("demo", help=HELP)(demo)
