"""``tidings sagas list|show|retry|compensate|abort``: saga instances as the orchestrators
stored them, and operator actions on them.

``list`` and ``show`` read the saga tables (``tidings_sagas``, ``tidings_saga_events``) in
the orchestrator's database; no broker is needed. An action is a request written to the
outbox table of that database (the orchestrator's relay publishes it to the saga's reply
topic), so the instance's owner does the transition in order with its replies; the command
waits for the outcome recorded in the history.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import typer

from ..errors import SagaConflict, Timeout, TransportUnavailable
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


ACTION_HELP = {
    "retry": """Send the current step's command again, as a new attempt.

For a running saga whose participant was down (or lost the command), or a compensating or
failed one (its current compensation is sent again). Recorded in the history with --by and
--reason; waits for the orchestrator to do it.

Example:

\b
    tidings sagas retry 3f1c... --db sqlite:///orders.db --reason "payments is back"
""",
    "compensate": """Stop going forward: compensate the completed steps, last first.

Only for a running saga before its pivot (after the pivot a saga only moves forward: retry
it, or abort it). The step in flight is compensated too (its command may still take effect).

Example:

\b
    tidings sagas compensate 3f1c... --db sqlite:///orders.db --reason "customer cancelled"
""",
    "abort": """Mark a saga aborted, without compensations: nothing more is sent.

For an operator who fixed things by hand. Needs --yes.

Example:

\b
    tidings sagas abort 3f1c... --db sqlite:///orders.db --yes --reason "refunded by hand"
""",
}


def _act(
    ctx: typer.Context,
    action: str,
    saga_id: str,
    db: str,
    reason: str | None,
    by: str | None,
    wait: float,
    prefix: str,
    outbox_table: str,
    as_json: bool,
) -> None:
    import sqlalchemy as sa

    from ..outbox import Outbox
    from ..sagas.operations import outcome as find_outcome
    from ..sagas.operations import request_action

    st = state(ctx, None, as_json)
    with user_errors():
        engine, store = _store(db, prefix)
        if not sa.inspect(engine).has_table(outbox_table):
            raise fail(
                f"no outbox table {outbox_table} in {db}: an action is written there for the "
                "orchestrator's relay (give --outbox-table if it has another name)"
            )
        outbox = Outbox(engine, outbox_table)
        request, record = request_action(
            engine, store, outbox, saga_id, action, reason=reason, by=by
        )
        outcome = None
        deadline = time.monotonic() + wait
        while wait > 0:
            with engine.connect() as conn:
                outcome = find_outcome(conn, store, saga_id, request.request)
                if outcome is not None:
                    record = store.load(conn, saga_id, lock=False)
            if outcome is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        engine.dispose()
        if outcome is not None and outcome["event"] == "action-refused":
            raise SagaConflict(outcome["detail"].split(": ", 1)[-1])
        if outcome is None and wait > 0:
            raise Timeout(
                f"{action} of saga {saga_id} requested ({request.request}) but no orchestrator "
                f"did it within {wait}s: are an orchestrator and its outbox relay running?"
            )
    data = {"id": saga_id, "action": action, "request": request.request,
            "done": outcome is not None, "status": record.status}  # fmt: skip
    done = f"-> {record.status}" if outcome is not None else "requested"
    show(st, data, lambda: f"saga {saga_id}: {action} {done} ({request.request})")


ReasonOpt = Annotated[
    str | None,
    typer.Option("--reason", help="Why (kept in the saga's history).", show_default=False),
]
ByOpt = Annotated[
    str | None,
    typer.Option("--by", help="Who (default: your user name).", show_default=False),
]
WaitOpt = Annotated[
    float,
    typer.Option("--wait", min=0, help="Seconds to wait for the orchestrator to do it (0: not)."),
]
OutboxOpt = Annotated[str, typer.Option("--outbox-table", help="The outbox table's name.")]
IdArg = Annotated[str, typer.Argument(metavar="ID", help="The saga instance's id.")]


@app.command("retry", help=ACTION_HELP["retry"])
def retry_saga(
    ctx: typer.Context,
    saga_id: IdArg,
    db: DbOpt,
    reason: ReasonOpt = None,
    by: ByOpt = None,
    wait: WaitOpt = 30.0,
    prefix: PrefixOpt = "tidings",
    outbox_table: OutboxOpt = "tidings_outbox",
    as_json: JsonOpt = False,
) -> None:
    _act(ctx, "retry", saga_id, db, reason, by, wait, prefix, outbox_table, as_json)


@app.command("compensate", help=ACTION_HELP["compensate"])
def compensate_saga(
    ctx: typer.Context,
    saga_id: IdArg,
    db: DbOpt,
    reason: ReasonOpt = None,
    by: ByOpt = None,
    wait: WaitOpt = 30.0,
    prefix: PrefixOpt = "tidings",
    outbox_table: OutboxOpt = "tidings_outbox",
    as_json: JsonOpt = False,
) -> None:
    _act(ctx, "compensate", saga_id, db, reason, by, wait, prefix, outbox_table, as_json)


@app.command("abort", help=ACTION_HELP["abort"])
def abort_saga(
    ctx: typer.Context,
    saga_id: IdArg,
    db: DbOpt,
    yes: Annotated[
        bool, typer.Option("--yes", help="Yes, abort it without compensations.")
    ] = False,
    reason: ReasonOpt = None,
    by: ByOpt = None,
    wait: WaitOpt = 30.0,
    prefix: PrefixOpt = "tidings",
    outbox_table: OutboxOpt = "tidings_outbox",
    as_json: JsonOpt = False,
) -> None:
    if not yes:
        raise fail(
            f"abort stops saga {saga_id} without compensating anything: if you fixed things by "
            "hand, run it again with --yes"
        )
    _act(ctx, "abort", saga_id, db, reason, by, wait, prefix, outbox_table, as_json)


SERVE_HELP = """Serve the saga dashboard: instances by status, one saga's steps and history,
and retry / compensate / abort buttons (the same requests as `tidings sagas retry` ...).

It reads the orchestrator's database (the saga tables live there, not in the broker) and
writes actions to its outbox table. No login: it binds 127.0.0.1 unless --host says
otherwise. Needs tidings[http].

Example:

\b
    tidings sagas serve --db sqlite:///orders.db --port 7480
"""


@app.command("serve", help=SERVE_HELP)
def serve_dashboard(
    db: DbOpt,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = 7480,
    prefix: PrefixOpt = "tidings",
    outbox_table: OutboxOpt = "tidings_outbox",
) -> None:
    with user_errors():
        engine, _ = _store(db, prefix)
        engine.dispose()
        try:
            import uvicorn  # noqa: F401 - the extra is there

            from ..sagas.dashboard import create_app, serve
        except ImportError as exc:
            raise fail(f"the saga dashboard needs tidings[http] ({exc.name} is missing): "
                       "pip install 'tidings[http]'") from None  # fmt: skip
        app = create_app(db, prefix=prefix, outbox_table=outbox_table)
        asyncio.run(serve(app, host, port))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="sagas")


__all__ = ["register"]
