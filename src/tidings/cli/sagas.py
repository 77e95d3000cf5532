"""``tidings sagas list|show``: saga instances as the orchestrators stored them.

They read the saga tables (``tidings_sagas``, ``tidings_saga_events``) in the orchestrator's
database; no broker is needed.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from ..errors import TransportUnavailable
from .output import JsonOpt, fail, show, state, table, user_errors

app = typer.Typer(
    help="Saga instances: status, current step, history of steps, the failed step's error.",
    no_args_is_help=True,
)

DbOpt = Annotated[
    str,
    typer.Option(
        "--db", envvar="TIDINGS_SAGAS_DB", show_default=False,
        help="The orchestrator's database, a SQLAlchemy URL ($TIDINGS_SAGAS_DB).",
    ),
]  # fmt: skip
PrefixOpt = Annotated[str, typer.Option("--prefix", help="The saga tables' prefix.")]

LIST_HELP = """List saga instances, newest first, with a count per status.

Example:

\b
    tidings sagas list --db sqlite:///orders.db
    tidings sagas list --db postgresql://app@db/orders --status compensating --json
"""

SHOW_HELP = """Show one saga instance: its state, its steps and its history.

Example:

\b
    tidings sagas show 3f1c... --db sqlite:///orders.db
"""


def _store(db: str, prefix: str) -> tuple[Any, Any]:
    import sqlalchemy as sa

    from ..sagas.store import SagaStore

    try:
        engine = sa.create_engine(db)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise fail(f"--db {db!r} is not a usable SQLAlchemy URL: {exc}") from None
    store = SagaStore(prefix)
    try:
        found = sa.inspect(engine).has_table(store.sagas.name)
    except sa.exc.DBAPIError as exc:  # unreachable, refused, wrong password, ...
        where = engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise TransportUnavailable(
            f"cannot reach the database {where}: {reason}; is it running, and is --db right?"
        ) from None
    if not found:
        raise fail(f"no saga table {store.sagas.name} in {db}: is it the orchestrator's database?")
    return engine, store


def _current(record: Any) -> str:
    if record.status in ("running", "compensating"):
        name = record.steps[record.step]["name"]
        return f"{name} ({record.phase} #{record.attempt})"
    return "-"


def _summary(record: Any) -> dict[str, Any]:
    return {
        "id": record.id, "saga": record.name, "status": record.status,
        "step": record.steps[record.step]["name"] if record.steps else None,
        "phase": record.phase, "attempt": record.attempt, "deadline": record.deadline,
        "failed_step": record.failed_step, "error": record.error,
        "created_at": record.created_at, "updated_at": record.updated_at,
    }  # fmt: skip


def _ago(at: float | None) -> str:
    return "-" if at is None else f"{time.time() - at:.1f}"


@app.command("list", help=LIST_HELP)
def list_sagas(
    ctx: typer.Context,
    db: DbOpt,
    status: Annotated[
        str | None, typer.Option("--status", help="Only this status.", show_default=False)
    ] = None,
    name: Annotated[
        str | None, typer.Option("--saga", help="Only this saga.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    prefix: PrefixOpt = "tidings",
    as_json: JsonOpt = False,
) -> None:
    from ..sagas.store import STATUSES

    st = state(ctx, None, as_json)
    if status is not None and status not in STATUSES:
        raise fail(f"--status must be one of {', '.join(STATUSES)}, got {status!r}")
    with user_errors():
        engine, store = _store(db, prefix)
        with engine.connect() as conn:
            records = store.list(conn, status=status, name=name, limit=limit)
            counts = store.counts(conn)
        engine.dispose()
    data = {"counts": counts, "sagas": [_summary(r) for r in records]}

    def render() -> Any:
        from rich.console import Group

        head = table("sagas", ["status", "instances"], sorted(counts.items()))
        rows = [[r.id, r.name, r.status, _current(r), r.failed_step or "", _ago(r.updated_at),
                 (r.error or "")[:60]] for r in records]  # fmt: skip
        cols = ["id", "saga", "status", "current step", "failed step", "updated (s ago)", "error"]
        return Group(head, table(None, cols, rows))

    show(st, data, render)


@app.command("show", help=SHOW_HELP)
def show_saga(
    ctx: typer.Context,
    saga_id: Annotated[str, typer.Argument(metavar="ID", help="The saga instance's id.")],
    db: DbOpt,
    prefix: PrefixOpt = "tidings",
    as_json: JsonOpt = False,
) -> None:
    import msgspec

    st = state(ctx, None, as_json)
    with user_errors():
        engine, store = _store(db, prefix)
        with engine.connect() as conn:
            record, events = store.show(conn, saga_id)
        engine.dispose()
    data = {**_summary(record), "state": msgspec.json.decode(record.state),
            "steps": record.steps, "events": events}  # fmt: skip

    def render() -> Any:
        from rich.console import Group

        head = table(
            f"saga {record.name} {record.id}",
            ["status", "current step", "failed step", "error"],
            [[record.status, _current(record), record.failed_step or "", record.error or ""]],
        )
        fields = data["state"] if isinstance(data["state"], dict) else {"": data["state"]}
        state_table = table("state", ["field", "value"], [[k, v] for k, v in fields.items()])
        steps = table(
            "steps", ["step", "status", "attempts", "compensations", "error"],
            [[s["name"], s["status"], s.get("attempts", 0), s.get("compensations", 0),
              s.get("error") or ""] for s in record.steps],
        )  # fmt: skip
        started = record.created_at
        history = table(
            "history", ["+s", "step", "event", "detail"],
            [[f"{e['at'] - started:.3f}", e["step"] or "", e["event"], e["detail"] or ""]
             for e in events],
        )  # fmt: skip
        return Group(head, state_table, steps, history)

    show(st, data, render)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="sagas")


__all__ = ["register"]
