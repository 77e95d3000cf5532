"""``tidings outbox relay|status|create-table``: run an outbox relay, watch an outbox."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Annotated, Any

import typer

from .output import JsonOpt, UrlOpt, console, fail, show, state, table, user_errors

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

app = typer.Typer(
    help="The transactional outbox: relay committed rows to the broker, show progress.",
    no_args_is_help=True,
)

DbOpt = Annotated[
    str,
    typer.Option(
        "--db", envvar="TIDINGS_OUTBOX_DB", show_default=False,
        help="The outbox's database, a SQLAlchemy URL ($TIDINGS_OUTBOX_DB).",
    ),
]  # fmt: skip
TableOpt = Annotated[str, typer.Option("--table", help="The outbox table.")]
SlotOpt = Annotated[
    str | None,
    typer.Option("--slot", help="Replication slot (tail mode; default: <table>_<database>).",
                 show_default=False),
]  # fmt: skip

RELAY_HELP = """Move committed outbox rows to the broker until SIGTERM/SIGINT.

--mode poll reads unpublished rows (any SQL database; LISTEN/NOTIFY wakes it on
PostgreSQL); --mode tail decodes PostgreSQL's WAL through a logical replication slot
(wal_level = logical). Start several: one is active, the others stand by and take over
within a few seconds when it dies. Progress is logged and shown by `tidings outbox status`.

Example:

\b
    tidings outbox relay --db sqlite:///app.db --broker tidings://127.0.0.1:7420
    tidings outbox relay --db postgresql://app@db/shop --mode tail
"""

STATUS_HELP = """Show an outbox's backlog, its relays and (PostgreSQL) its slot's WAL lag.

Example:

\b
    tidings outbox status --db sqlite:///app.db
    tidings outbox status --db postgresql://app@db/shop --json
"""

CREATE_HELP = """Create the outbox table (and its index; on PostgreSQL its notify trigger).

Example:

\b
    tidings outbox create-table --db sqlite:///app.db
"""


def _outbox(db: str, table_name: str) -> Any:
    import sqlalchemy as sa

    from ..outbox import Outbox

    try:
        engine = sa.create_engine(db)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise fail(f"--db {db!r} is not a usable SQLAlchemy URL: {exc}") from None
    return Outbox(engine, table=table_name)


@app.command("relay", help=RELAY_HELP)
def relay(
    ctx: typer.Context,
    db: DbOpt,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker",
            help="Broker URL (default: the global --url, $TIDINGS_URL).",
            show_default=False,
        ),
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help="poll or tail.")] = "poll",
    table_name: TableOpt = "tidings_outbox",
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="Rows per publish (500 poll, 2000 tail)."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.001, help="Poll mode: the longest idle wait (s).")
    ] = 1.0,
    retention: Annotated[
        float, typer.Option("--retention", min=0, help="Seconds published rows are kept.")
    ] = 24 * 3600.0,
    slot: SlotOpt = None,
    url: UrlOpt = None,
) -> None:
    from ..outbox import Relay
    from ..outbox.relay import Mode

    st = state(ctx, url)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    with user_errors():
        if mode not in ("poll", "tail"):
            raise fail(f"--mode must be poll or tail, got {mode!r}")
        relay_mode: Mode = "poll" if mode == "poll" else "tail"
        outbox = _outbox(db, table_name)
        runner = Relay(outbox, broker or st.url, mode=relay_mode, batch_size=batch_size,
                       max_interval=interval, retention=retention, slot=slot)  # fmt: skip

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, runner.stop)
            await runner.run()

        asyncio.run(main())


def render_status(data: dict[str, Any]) -> Any:
    from rich.console import Group

    now = time.time()
    age = data["oldest_unpublished_age"]
    head = table(
        f"outbox {data['table']}", ["rows", "unpublished", "oldest unpublished (s)"],
        [[data["rows"], "-" if data["unpublished"] is None else data["unpublished"],
          "-" if age is None else f"{age:.1f}"]],
    )  # fmt: skip
    relays = table(
        "relays", ["holder", "mode", "role", "alive", "published", "rows/s", "duplicates",
                   "seen (s ago)", "last error"],
        [[r["holder"], r["mode"], r["role"], r["alive"], r["published"], f"{r['rate']:.0f}",
          r["duplicates"], f"{now - r['updated_at']:.0f}", r["last_error"] or ""]
         for r in data["relays"]],
    )  # fmt: skip
    parts = [head, relays]
    if data["slot"] is not None:
        s = data["slot"]
        parts.append(table(
            f"replication slot {s['name']}",
            ["active", "confirmed LSN", "lag (bytes)", "WAL retained (bytes)", "wal status"],
            [[s["active"], s["confirmed_lsn"], s["lag_bytes"], s["retained_bytes"],
              s["wal_status"]]],
        ))  # fmt: skip
    return Group(*parts)


@app.command("status", help=STATUS_HELP)
def status(
    ctx: typer.Context,
    db: DbOpt,
    table_name: TableOpt = "tidings_outbox",
    slot: SlotOpt = None,
    as_json: JsonOpt = False,
) -> None:
    from ..outbox import outbox_status

    st = state(ctx, None, as_json)
    with user_errors():
        outbox = _outbox(db, table_name)
        data = outbox_status(outbox.sync_engine, outbox.table, slot=slot)
    show(st, data, lambda: render_status(data))


@app.command("create-table", help=CREATE_HELP)
def create_table(db: DbOpt, table_name: TableOpt = "tidings_outbox") -> None:
    with user_errors():
        outbox = _outbox(db, table_name)
        outbox.create_table()
    console().print(f"outbox table {table_name} is ready")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="outbox")


__all__ = ["register"]
