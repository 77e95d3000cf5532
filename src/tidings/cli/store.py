"""``tidings store check|repair``: look for damaged records in a stopped broker's data
directory, and cut them out (the records around them are kept; the cut bytes are copied to
``DIR/quarantine``). A normal start already repairs what it scans (the tails); these scan
every segment."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import TidingsError
from ..storage.base import RecoveryReport
from ..storage.disk.check import check, repair
from .output import JsonOpt, console, fail, print_json, state

app = typer.Typer(
    help="""Check or repair a stopped broker's data directory.

Example:

\b
    tidings store check ./tidings-data
    tidings store repair ./tidings-data
""",
    no_args_is_help=True,
)

DirArg = Annotated[str, typer.Argument(help="The broker's data directory (--data).")]

DAMAGE_EXIT = 6  # the exit code of StorageError: the store holds damage


def _data(report: RecoveryReport) -> dict[str, Any]:
    return {
        "topics": report.topics,
        "messages": report.messages,
        "lost": [
            {"topic": r.topic, "partition": r.partition, "first": r.first, "last": r.last,
             "file": r.file, "position": r.position, "reason": r.reason,
             "quarantine": r.quarantine}
            for r in report.lost
        ],
        "truncated": report.truncated,
        "quarantined": report.quarantined,
    }  # fmt: skip


def _print(report: RecoveryReport, as_json: bool, done: str) -> None:
    if as_json:
        print_json(_data(report))
        return
    out = console()
    for lost in report.lost:
        out.print(f"lost: {lost.describe()}", markup=False, highlight=False)
    for line in report.truncated:
        out.print(f"torn tail: {line}", markup=False, highlight=False)
    if not report.lost and not report.truncated:
        out.print(f"no damage: {report.topics} topics, {report.messages} offsets", markup=False)
    else:
        out.print(done, markup=False, highlight=False)


@app.command("check")
def check_command(ctx: typer.Context, data: DirArg, as_json: JsonOpt = False) -> None:
    """Read every record of every segment and report damage; change nothing.

    Exits with 0 when nothing is damaged, 6 when something is (run `tidings store repair`).

    Example:

    \b
        tidings store check ./tidings-data
    """
    st = state(ctx, as_json=as_json)
    try:
        report = check(data)
    except TidingsError as exc:
        raise fail(exc.message, exc.exit_code) from None
    _print(report, st.json, f"damage found: stop the broker and run `tidings store repair {data}`")
    if report.lost or report.truncated:
        raise typer.Exit(DAMAGE_EXIT)


@app.command("repair")
def repair_command(ctx: typer.Context, data: DirArg, as_json: JsonOpt = False) -> None:
    """Cut damaged records out of every segment, keeping a copy in DIR/quarantine.

    Example:

    \b
        tidings store repair ./tidings-data
    """
    st = state(ctx, as_json=as_json)
    try:
        report = repair(data)
    except TidingsError as exc:
        raise fail(exc.message, exc.exit_code) from None
    _print(report, st.json, f"repaired: the damaged bytes are under {data}/quarantine")
