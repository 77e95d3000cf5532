"""How the CLI talks back: JSON or rich tables on stdout, errors on stderr with exit codes.

Every command takes ``--json`` (machine-readable output, nothing else on stdout) and ``--url``
(default ``$TIDINGS_URL``). Errors from :mod:`tidings.errors` print their message and exit with
the error's ``exit_code``; a traceback is only ever shown for a bug.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import TidingsError

RootUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="TIDINGS_URL",
        help="Broker URL (tidings://, nats://, memory://).",
        show_default=False,
    ),
]
# A command's own --url wins over the global one (which reads $TIDINGS_URL).
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url", help="Broker URL (default: the global --url, $TIDINGS_URL).", show_default=False
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@dataclasses.dataclass
class CliState:
    """Global options, kept in ``ctx.obj`` by the app callback."""

    url: str | None = None
    json: bool = False


def state(ctx: typer.Context, url: str | None = None, as_json: bool = False) -> CliState:
    """Merge a command's own ``--url``/``--json`` with the global ones."""
    base = ctx.find_root().obj if isinstance(ctx.find_root().obj, CliState) else CliState()
    return CliState(url=url or base.url, json=as_json or base.json)


def console() -> Console:
    width = None if sys.stdout.isatty() else 140  # pipes and logs: do not squeeze to 80
    return Console(file=sys.stdout, highlight=False, soft_wrap=False, width=width)


def err_console() -> Console:
    return Console(file=sys.stderr, highlight=False)


def to_data(value: Any) -> Any:
    """Plain JSON-able data from msgspec Structs, pydantic models, dataclasses and bytes."""
    if isinstance(value, msgspec.Struct):
        return to_data(msgspec.to_builtins(value))
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_data(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    if isinstance(value, bytes):
        return body_text(value)
    return value


def body_text(body: bytes) -> str:
    """A body as text: UTF-8 when it is, else ``base64:...``."""
    try:
        return body.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(body).decode()


def print_json(data: Any, *, indent: int | None = 2) -> None:
    sys.stdout.write(json.dumps(to_data(data), indent=indent, default=str) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        numeric = col in NUMERIC
        t.add_column(col, justify="right" if numeric else "left", no_wrap=not numeric)
    for row in rows:
        t.add_row(*(fmt(v) for v in row))
    return t


NUMERIC = {
    "partitions", "messages", "bytes", "ready", "in flight", "delayed", "lag", "dead",
    "members", "publish/s", "deliver/s", "ack/s", "offset", "partition", "deliveries", "count",
    "oldest (s)",
}  # fmt: skip


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 1e6 else f"{value:,.0f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def show(st: CliState, data: Any, render: Any) -> None:
    """``--json``: print ``data``; otherwise print the rich renderable ``render()`` builds."""
    if st.json:
        print_json(data)
    else:
        console().print(render() if callable(render) else render)


def fail(message: str, exit_code: int = 2) -> typer.Exit:
    """Print ``error: message`` and build the Exit to raise."""
    # soft_wrap: a message (a path, a URL) is never broken across lines, on a terminal or not
    err_console().print(
        f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True
    )
    return typer.Exit(exit_code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn tidings errors (and a broker that is not there) into a message and an exit code."""
    try:
        yield
    except TidingsError as exc:
        raise fail(exc.message, exc.exit_code) from None
    except ConnectionError as exc:
        raise fail(f"cannot reach the broker: {exc}", 8) from None


def parse_pairs(pairs: Sequence[str], what: str = "--header") -> dict[str, str]:
    """``k=v`` strings to a dict (a clear error for anything else)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"{what} expects key=value, got {pair!r}")
        out[key] = value
    return out
