"""The ``tidings`` app: global options (``--url``, ``--json``, ``--version``), the command
groups, and :func:`main`, which turns errors into exit codes without tracebacks."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from ..errors import TidingsError
from . import (
    broker,
    demo,
    dlq,
    gateway,
    groups,
    outbox,
    publish,
    run,
    sagas,
    services,
    stats,
    store,
    subscribe,
    topics,
    trace,
    users,
)

try:  # typer 0.2x vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException  # type: ignore[assignment]  # the same class

from .output import CliState, JsonOpt, RootUrlOpt, fail

HELP = """Reliable messaging for Python services.

Example:

\b
    tidings broker --data ./tidings-data &
    tidings pub orders '{"id": 1}' --key order-1
    tidings sub orders --group billing --count 1
"""

app = typer.Typer(
    name="tidings",
    help=HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"tidings {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    url: RootUrlOpt = None,
    as_json: JsonOpt = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    ctx.obj = CliState(url=url, json=as_json)


app.add_typer(topics.app, name="topic")
app.add_typer(groups.app, name="group")
app.add_typer(dlq.app, name="dlq")
app.add_typer(users.app, name="user")
app.add_typer(store.app, name="store")
outbox.register(app)
app.add_typer(services.app, name="services")
sagas.register(app)
for module in (broker, publish, subscribe, stats, trace, demo, run, gateway):
    module.register(app)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="tidings", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except ClickException as exc:
        exc.show()
        return exc.exit_code
    except typer.Abort:
        return 130
    except TidingsError as exc:
        return fail(exc.message, exc.exit_code).exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
