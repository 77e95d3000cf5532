"""Running a service in the foreground: signal handling and graceful shutdown.

SIGTERM and SIGINT ask the service to stop: it stops fetching, lets in-flight handlers finish
within its grace period, nacks what is left (so another instance gets it at once), and closes.
A second signal during shutdown exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import Service

log = logging.getLogger("tidings.service")


async def serve_with_signals(service: Service) -> None:
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, _on_signal, service, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not supported on this platform
                pass
    try:
        await service.serve()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _on_signal(service: Service, sig: signal.Signals) -> None:
    if service._stop_requested is not None and service._stop_requested.is_set():
        log.warning("%s again: exiting without waiting", sig.name)
        raise SystemExit(1)
    log.info("%s: stopping %s (grace period %ss)", sig.name, service.name, service.grace_period)
    service.request_stop()


def run_until_signalled(service: Service) -> None:
    """Block running ``service`` until SIGTERM/SIGINT."""
    asyncio.run(serve_with_signals(service))
