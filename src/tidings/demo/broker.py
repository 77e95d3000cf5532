"""A throw-away broker for the demo: ``python -m tidings.server`` on a free 127.0.0.1 port,
its data in a temporary directory, stopped (SIGTERM, by PID) when the demo ends."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ..errors import TransportUnavailable

LISTENING = re.compile(r"listening on (tidings://[0-9A-Za-z.:\[\]-]+:\d+)")
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory that holds tidings/


def child_env() -> dict[str, str]:
    """The environment for child processes: this tidings importable, output unbuffered."""
    env = dict(os.environ)
    paths = [PACKAGE_ROOT, *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    for name in [k for k in env if k.startswith("TIDINGS_") and k != "TIDINGS_LOG_LEVEL"]:
        del env[name]  # the demo broker's settings are the demo's, not the shell's
    return env


class DemoBroker:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: list[str] = []
        self._ready = threading.Event()

    def start(self, timeout: float = 30.0) -> str:
        cmd = [sys.executable, "-m", "tidings.server", "--host", "127.0.0.1", "--port", "0",
               "--data", str(self.data_dir), "--fsync", "batch"]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=child_env(),
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or not self.url:
            self.stop()
            raise TransportUnavailable(
                "the demo broker did not start:\n" + "".join(self.output[-20:])
            )
        return self.url

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            if len(self.output) < 200:
                self.output.append(line)
            match = LISTENING.search(line)
            if match and not self._ready.is_set():
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
