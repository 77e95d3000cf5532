"""Playing the demo from start to end, and the summary table that ends it."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from .display import Display
from .story import DemoOptions, Story

__all__ = ["DemoOptions", "render_summary", "run_demo"]


async def _play(opts: DemoOptions) -> dict[str, Any]:
    display = Display(quiet=opts.quiet, interactive=opts.interactive)
    story = Story(opts, display)
    try:
        with display:
            await story.start()
            return await story.play()
    finally:
        await story.stop()


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    """Play the story (starting a broker unless ``opts.url``); returns the summary dict, whose
    ``reconciled`` says whether every service handled every refund exactly once in effect."""
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_play(opts))
    return uvloop.run(_play(opts))


def render_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    n = summary["orders"]
    table = Table(
        title=f"Summary: {n:,} refunds, {summary['malformed']} malformed events",
        title_justify="left", header_style="bold",
    )  # fmt: skip
    for col in ("service", "handled", "distinct orders", "by worker", "duplicates skipped",
                "redelivered", "dead-lettered", "exactly once"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("service", "by worker") else "right")
    for name, s in summary["services"].items():
        workers = ", ".join(f"{w} {c:,}" for w, c in s["by_worker"].items())
        table.add_row(
            name, f"{s['handled']:,}", f"{s['distinct_orders']:,}", workers,
            f"{s['duplicates_skipped']:,}", f"{s['redelivered']:,}", f"{s['dead_lettered']:,}",
            "[green]yes[/]" if s["reconciled"] else "[bold red]NO[/]",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"broker dropped {summary['broker_duplicates']} duplicate publishes (same msg_id within "
        f"the dedup window); {summary['resent_after_window']} re-sends after the window were "
        "skipped by the idempotent consumers",
        soft_wrap=True,
    )
    http = summary.get("http")
    if http:
        codes = ", ".join(f"{n:,} x {c}" for c, n in sorted(http["statuses"].items()))
        console.print(
            f"over HTTP: {http['posted']:,} refunds POSTed to {http['route']} through the gateway "
            f"({codes}); the order service took {http['handled_by_order_service']:,} of them",
            soft_wrap=True,
        )
    saga = summary.get("saga")
    if saga:
        ends = ", ".join(f"{i['id']} {i['status']}" for i in saga["instances"])
        console.print(f"saga {saga['saga']}: {ends}; each participant effect once: "
                      f"{'yes' if saga['reconciled'] else 'NO'}", soft_wrap=True)  # fmt: skip
    if summary.get("elapsed_seconds") is not None:
        console.print(f"played in {summary['elapsed_seconds']:.1f}s")
    if summary["reconciled"]:
        console.print("[bold green]reconciled:[/] every service handled every refund exactly "
                      "once in effect, and the refund sagas ended as they should")  # fmt: skip
    else:
        console.print("[bold red]NOT reconciled:[/] see the rows (and the saga line) marked NO")
