"""Fixtures: a real broker process, a real nats-server, and service processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers.broker_process import BrokerProcess
from tests.helpers.nats_server import *  # noqa: F403
from tests.helpers.rabbitmq_server import rabbitmq_server  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@pytest.fixture
def broker(tmp_path):
    proc = BrokerProcess(tmp_path / "broker", args=["--heartbeat", "1.0", "--http", "off"])
    proc.start()
    yield proc
    if proc.running:
        proc.stop()


class ServiceProcess:
    """``python -m tidings run tests.discovery.apps:NAME`` as a child, stopped by PID."""

    def __init__(self, target: str, url: str, *args: str, env: dict[str, str] | None = None):
        self.command = [
            sys.executable, "-m", "tidings.cli", "run", f"tests.discovery.apps:{target}",
            "--url", url, *args,
        ]  # fmt: skip
        environ = {**os.environ, **(env or {})}
        environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
        self.proc = subprocess.Popen(
            self.command, cwd=ROOT, env=environ, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def output(self) -> str:
        return self.proc.stdout.read() if self.proc.stdout and self.proc.poll() is not None else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def spawn():
    started: list[ServiceProcess] = []

    def start(target: str, url: str, *args: str, **kw) -> ServiceProcess:
        proc = ServiceProcess(target, url, *args, **kw)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
