"""Fixtures: a real broker process, real service processes and a real gateway process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.helpers.broker_process import BrokerProcess
from tests.helpers.rabbitmq_server import rabbitmq_server  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
LISTENING = re.compile(r"gateway listening on (http://[0-9.]+:\d+)")


class Proc:
    """A child process, its output collected, stopped by its PID."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.command = command
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env={**ENV, **(env or {})}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def service(target: str, url: str, env: dict[str, str] | None = None) -> Proc:
    cmd = [sys.executable, "-m", "tidings.cli", "run", f"tests.gateway.apps:{target}"]
    return Proc([*cmd, "--url", url], env)


class GatewayProc(Proc):
    def __init__(self, broker_url: str, *args: str) -> None:
        cmd = [sys.executable, "-m", "tidings.cli", "gateway", "--broker", broker_url]
        super().__init__([*cmd, "--port", "0", "--refresh", "0.5", *args])
        deadline = time.monotonic() + 30
        self.url = ""
        while time.monotonic() < deadline and not self.url:
            m = LISTENING.search(self.output())
            if m:
                self.url = m.group(1)
            elif self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited: {self.output()}")
            else:
                time.sleep(0.05)
        assert self.url, f"the gateway did not start: {self.output()}"


def wait_for(check, what: str, timeout: float = 45.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def wait_routes(gateway_url: str, *keys: str, timeout: float = 45.0) -> dict:
    """Wait until the gateway's OpenAPI document has every ``METHOD /path`` in ``keys``."""

    def has_all():
        doc = httpx.get(f"{gateway_url}/openapi.json", timeout=5).json()
        paths = doc["paths"]
        found = all(p in paths and m.lower() in paths[p] for m, p in (k.split() for k in keys))
        return doc if found else None

    return wait_for(has_all, f"routes {keys}", timeout)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    proc = BrokerProcess(tmp_path_factory.mktemp("broker") / "data", args=["--http", "off"])
    proc.start()
    yield proc
    if proc.running:
        proc.stop()


@pytest.fixture(scope="module")
def procs():
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop()
