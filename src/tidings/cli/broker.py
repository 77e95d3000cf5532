"""``tidings broker``: run the built-in broker (the same code as ``python -m tidings.server``).

Its options are not written here: they are generated from the server's one option table,
:data:`tidings.server.config.OPTIONS`, so both entry points take the same options, and each
option also comes from its ``TIDINGS_*`` environment variable (arguments win).
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer

from ..server.config import OPTIONS, argv_for, flags_of

HELP = """Run the tidings broker until SIGTERM/SIGINT (Ctrl-C).

Every option can also come from its environment variable (shown in brackets). SIGHUP rereads
the --users-file.

Example:

\b
    tidings broker --port 7420 --data ./tidings-data --fsync batch
"""


def broker(**values: Any) -> None:
    from ..server import main as server_main

    raise typer.Exit(server_main(argv_for(values)))


def _signature() -> inspect.Signature:
    params = []
    for name, (env, kind, help_text) in OPTIONS.items():
        text = f"{help_text} [{env}]"
        metavar = None if kind is bool else name.upper()
        option = typer.Option(*flags_of(name), help=text, show_default=False, metavar=metavar)
        annotation: Any = (
            Annotated[bool, option] if kind is bool else Annotated[kind | None, option]
        )
        default = False if kind is bool else None
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                              annotation=annotation)
        )  # fmt: skip
    return inspect.Signature(params)


broker.__signature__ = _signature()  # type: ignore[attr-defined]  # typer reads the options from it


def register(app: typer.Typer) -> None:
    app.command("broker", help=HELP)(broker)
