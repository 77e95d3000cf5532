"""Running the broker: ``serve(config)`` until SIGTERM/SIGINT (SIGHUP rereads the users file),
``run_server(config)`` with its own event loop (uvloop when installed), and ``main(argv)`` for
``python -m tidings.server``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Sequence

from ..errors import TidingsError
from ..logs import setup_logging
from .app import BrokerServer
from .config import ServerConfig, config_from
from .http import start_http
from .mqtt.listener import start_mqtt
from .reload import reload_users

log = logging.getLogger("tidings.server")


async def serve(config: ServerConfig, *, ready: asyncio.Event | None = None) -> None:
    """Run a broker until SIGTERM or SIGINT (or cancellation), then shut down gracefully."""
    server = BrokerServer(config)
    host, port = await server.start()
    mqtt = await start_mqtt(server)  # before HTTP, whose WebSocket path serves MQTT too
    http = await start_http(server, config.http)
    log.info("security: %s", server.describe_security())
    log.info("tidings broker %s listening on tidings://%s:%d", server.version, host, port)
    if host in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "bound to %s only: other machines cannot connect. Use --host 0.0.0.0 to accept "
            "remote clients (with --users-file and --tls-cert; see docs/security.md)",
            host,
        )
    elif not server.auth.enabled:
        log.warning(
            "listening on %s WITHOUT authentication: anyone who can reach this port may use "
            "the broker; configure --users-file (TIDINGS_USERS_FILE)",
            host,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.add_signal_handler(signal.SIGHUP, reload_users, server)  # reread --users-file
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        if http is not None:
            await http.stop()
        if mqtt is not None:
            await mqtt.stop()
        await server.stop()
        for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", signal.SIGTERM)):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass


def tune_gc() -> None:
    """A broker keeps many long-lived small objects (dedup ids, loaded entries); the default
    collector thresholds make young collections rescan them constantly. Measured on the engine's
    publish path (100-message batches with producer ids): 273k -> 364k msg/s with these
    thresholds. Cycles are rare here, so collecting less often costs little memory."""
    gc.set_threshold(50_000, 50, 100)


def run_server(config: ServerConfig) -> int:
    """Run a broker in this thread until a signal; returns the process exit code."""
    setup_logging(config.log_level, sys.stdout)  # the broker's only output
    tune_gc()
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(config))
    except TidingsError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except OSError as exc:
        log.error("cannot start the broker: %s", exc)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tidings.server [options]``; options and TIDINGS_* variables as in
    :func:`tidings.server.config.config_from`."""
    try:
        config = config_from(sys.argv[1:] if argv is None else argv)
    except TidingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return run_server(config)
