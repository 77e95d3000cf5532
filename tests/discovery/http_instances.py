"""Real HTTP instances on loopback for the balancer tests: one child process per instance
(:mod:`tidings.benchmarking.discovery.http_instance`: uvicorn + Starlette), answering
``GET /work`` with its name after ``delay`` seconds, or 500 at once when failing. Stopped by
PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    def __init__(self, name: str, delay: float = 0.0, fail: bool = False) -> None:
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tidings.benchmarking.discovery.http_instance", name, str(delay),
             "1" if fail else "0", str(self.port)],
            cwd=ROOT, env=env,
        )  # fmt: skip

    def wait_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/up", timeout=2):
                    return
            except OSError:
                assert self.proc.poll() is None, f"instance {self.name} exited"
                assert time.monotonic() < deadline, f"instance {self.name} did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@contextlib.asynccontextmanager
async def instances(*specs: tuple[str, float, bool]):
    running = [Instance(*spec) for spec in specs]
    try:
        for inst in running:
            await asyncio.to_thread(inst.wait_up)
        yield running
    finally:
        for inst in running:
            inst.stop()
