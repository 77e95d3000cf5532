"""``tidings run module:svc``, ``tidings asyncapi module:svc`` and ``tidings bench``."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ..errors import BadRequest
from .output import JsonOpt, UrlOpt, fail, state

RUN_HELP = """Run a tidings.Service until SIGTERM/SIGINT (graceful shutdown).

TARGET is module:attribute, imported with the current directory on the path.

Example:

\b
    tidings run payment:svc --url tidings://127.0.0.1:7420 --health-port 8081 --log-level INFO
"""

ASYNCAPI_HELP = """Print the AsyncAPI 3.0 document of a tidings.Service, or, with
--check-compat OLD.json, report the breaking changes against an earlier document (BACKWARD:
new schemas read old messages; FORWARD: old schemas read new messages; FULL: both) and exit
1 when there are any (for CI).

Example:

\b
    tidings asyncapi payment:svc --format yaml > asyncapi.yaml
    tidings asyncapi payment:svc --check-compat asyncapi-1.0.json --compat FULL
"""

BENCH_HELP = """Run the benchmarks; the arguments go to tidings.benchmarking (its own options:
tidings bench -- --help).

Example:

\b
    tidings bench --quick --engines tidings
    tidings bench discovery --quick
    tidings bench outbox --quick
    tidings bench gateway --quick
    tidings bench mqtt --quick --repeat 3
"""


def load_service(target: str) -> Any:
    """Import ``module:attribute`` and return the Service it names."""
    from ..service import Service

    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise BadRequest(f"expected module:attribute (like payment:svc), got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise BadRequest(
                f"cannot import {module_name!r}: no such module (run from the directory that "
                "holds it, or install it)"
            ) from exc
        raise
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise BadRequest(f"module {module_name!r} has no attribute {attr!r}") from None
    if callable(obj) and not isinstance(obj, Service):
        obj = obj()  # a factory
    if not isinstance(obj, Service):
        raise BadRequest(f"{target} is a {type(obj).__name__}, not a tidings.Service")
    return obj


def run(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="module:attribute of a tidings.Service.")],
    url: UrlOpt = None,
    health_port: Annotated[
        int | None,
        typer.Option(
            "--health-port", help="Serve /livez and /readyz on this port (0: a free one)."
        ),
    ] = None,
    heartbeat: Annotated[
        float | None,
        typer.Option("--heartbeat", help="Seconds between registry heartbeats (default 10)."),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            envvar="TIDINGS_LOG_LEVEL",
            help="DEBUG, INFO (default: lifecycle lines), WARNING or ERROR; to stderr.",
        ),
    ] = "INFO",
) -> None:
    st = state(ctx, url)
    from ..logs import level_of
    from .output import user_errors

    with user_errors():
        level = level_of(log_level)
        svc = load_service(target)
        if st.url and svc.url is None:
            svc.url = st.url
        if health_port is not None:
            svc.health_port = health_port
        if heartbeat is not None:
            svc.heartbeat = heartbeat
        svc.run(log_level=level)


def asyncapi(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="module:attribute of a tidings.Service.")],
    format: Annotated[str, typer.Option("--format", "-f", help="json or yaml.")] = "json",
    check_compat: Annotated[
        str | None,
        typer.Option("--check-compat", help="An earlier AsyncAPI document (JSON or YAML)."),
    ] = None,
    compat: Annotated[
        str, typer.Option("--compat", help="BACKWARD (default), FORWARD, FULL or NONE.")
    ] = "BACKWARD",
    as_json: JsonOpt = False,
) -> None:
    from .output import user_errors

    if check_compat is not None:
        with user_errors():
            svc = load_service(target)
            raise typer.Exit(compat_report(ctx, svc, check_compat, compat, as_json))

    if format not in ("json", "yaml"):
        raise fail(f"--format must be json or yaml, got {format!r}")
    fmt: Literal["json", "yaml"] = "json" if format == "json" else "yaml"
    with user_errors():
        svc = load_service(target)
        try:
            from ..service.asyncapi import export
        except ImportError:
            raise fail("this tidings has no AsyncAPI export (tidings.service.asyncapi)") from None
        text = export(svc, format=fmt)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def compat_report(ctx: typer.Context, svc: Any, old_path: str, mode: str, as_json: bool) -> int:
    import json

    from ..discovery.compat import MODES, check
    from ..service.asyncapi import document
    from .output import console, print_json

    if mode.upper() not in MODES:
        raise fail(f"--compat must be one of {', '.join(MODES)}, got {mode!r}")
    try:
        text = Path(old_path).read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot read {old_path}: {exc.strerror}") from None
    try:
        old = json.loads(text)
    except ValueError:
        try:
            import yaml

            old = yaml.safe_load(text)
        except Exception:
            raise fail(f"{old_path} is neither JSON nor YAML: give an AsyncAPI document") from None
    if not isinstance(old, dict) or "operations" not in old:
        raise fail(f"{old_path} is not an AsyncAPI 3 document (no 'operations')")
    findings = check(old, document(svc), mode)
    if as_json or state(ctx).json:
        print_json({"mode": mode.upper(), "compatible": not findings,
                    "breaking": [f.as_dict() for f in findings]})  # fmt: skip
    elif not findings:
        console().print(f"compatible ({mode.upper()}) with {old_path}")
    else:
        out = console()
        out.print(f"{len(findings)} breaking change(s) ({mode.upper()}) against {old_path}:")
        for f in findings:
            out.print(f"  {f.direction:<8} {f.where}: {f.problem}")
    return 1 if findings else 0


def bench(ctx: typer.Context) -> None:
    if ctx.args[:1] == ["discovery"]:  # its own benchmark (tidings.benchmarking.discovery)
        from ..benchmarking.discovery import main as discovery_bench

        try:
            code = discovery_bench(list(ctx.args[1:]))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        raise typer.Exit(code or 0)
    try:
        from .. import benchmarking
    except ModuleNotFoundError as exc:
        if exc.name in ("tidings.benchmarking",):
            raise fail(
                "the benchmarks are not part of this installation (tidings.benchmarking is "
                "missing); run them from a source checkout: python -m tidings.benchmarking",
                1,
            ) from None
        raise
    try:
        code = benchmarking.main(list(ctx.args))
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    raise typer.Exit(code or 0)


def register(app: typer.Typer) -> None:
    app.command("run", help=RUN_HELP)(run)
    app.command("asyncapi", help=ASYNCAPI_HELP)(asyncapi)
    app.command(
        "bench",
        help=BENCH_HELP,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(bench)
