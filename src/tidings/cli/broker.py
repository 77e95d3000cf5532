"""``tidings broker``: run the built-in broker (the same code as ``python -m tidings.server``).

The options are the server's; each also comes from its ``TIDINGS_*`` environment variable,
which :func:`tidings.server.config_from` reads (arguments win).
"""

from __future__ import annotations

from typing import Annotated

import typer

HELP = """Run the tidings broker until SIGTERM/SIGINT (Ctrl-C).

Every option can also come from its environment variable (TIDINGS_PORT, TIDINGS_DATA,
TIDINGS_FSYNC, ...).

Example:

\b
    tidings broker --port 7420 --data ./tidings-data --fsync batch
"""


def _opt(help_text: str, *flags: str) -> typer.models.OptionInfo:
    return typer.Option(*flags, help=help_text, show_default=False)


def broker(
    host: Annotated[str | None, _opt("Address to bind (default 127.0.0.1) [TIDINGS_HOST].")] = None,
    port: Annotated[
        int | None, _opt("TCP port (default 7420; 0 picks one) [TIDINGS_PORT].")
    ] = None,
    data: Annotated[
        str | None, _opt("Data directory (default ./tidings-data) [TIDINGS_DATA].", "--data")
    ] = None,
    memory: Annotated[
        bool, _opt("Keep messages in memory only, lost on restart [TIDINGS_MEMORY].", "--memory")
    ] = False,
    fsync: Annotated[
        str | None, _opt("batch (default), interval or never [TIDINGS_FSYNC].")
    ] = None,
    fsync_interval_ms: Annotated[
        int | None, _opt("fsync period for --fsync interval [TIDINGS_FSYNC_INTERVAL_MS].")
    ] = None,
    deliver: Annotated[
        str | None,
        _opt(
            "written (default): deliver while the fsync runs; durable: only after it "
            "[TIDINGS_DELIVER]."
        ),
    ] = None,
    max_connections: Annotated[
        int | None, _opt("Client connections at once [TIDINGS_MAX_CONNECTIONS].")
    ] = None,
    max_frame_size: Annotated[
        int | None, _opt("Largest protocol frame, bytes [TIDINGS_MAX_FRAME_SIZE].")
    ] = None,
    max_message_size: Annotated[
        int | None, _opt("Largest message any topic allows [TIDINGS_MAX_MESSAGE_SIZE].")
    ] = None,
    heartbeat: Annotated[
        float | None, _opt("Heartbeat interval, seconds [TIDINGS_HEARTBEAT].")
    ] = None,
    write_high_water: Annotated[
        int | None, _opt("Bytes buffered per client at most [TIDINGS_WRITE_HIGH_WATER].")
    ] = None,
    log_level: Annotated[
        str | None, _opt("DEBUG, INFO (default), WARNING or ERROR [TIDINGS_LOG_LEVEL].")
    ] = None,
) -> None:
    from ..server import main as server_main

    values = {
        "--host": host,
        "--port": port,
        "--data": data,
        "--fsync": fsync,
        "--fsync-interval-ms": fsync_interval_ms,
        "--deliver": deliver,
        "--max-connections": max_connections,
        "--max-frame-size": max_frame_size,
        "--max-message-size": max_message_size,
        "--heartbeat": heartbeat,
        "--write-high-water": write_high_water,
        "--log-level": log_level,
    }
    argv: list[str] = []
    for flag, value in values.items():
        if value is not None:
            argv += [flag, str(value)]
    if memory:
        argv.append("--memory")
    raise typer.Exit(server_main(argv))


def register(app: typer.Typer) -> None:
    app.command("broker", help=HELP)(broker)
