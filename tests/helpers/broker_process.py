"""Start and stop a real tidings broker process for tests (server, conformance, CLI, demo).

    with BrokerProcess(tmp_path / "data") as broker:     # or .start() / .stop()
        transport = NativeTransport(broker.url)
        ...
        broker.restart()                                  # same port, same data
        assert broker.stop() == 0                         # SIGTERM: graceful, exit code

The process is ``sys.executable -m tidings.server --port 0 --data DIR`` (the bound address is
read from its log), stopped by its PID only. Its output is kept in ``broker.output``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
LISTENING = re.compile(r"listening on tidings://([0-9A-Za-z.:\[\]-]+):(\d+)")


class BrokerProcess:
    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int = 0,
        memory: bool = False,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.host = "127.0.0.1"
        self.memory = memory
        self.args = list(args)
        self.env = dict(env or {})
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"tidings://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the broker is not running"
        return self.proc.pid

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "tidings.server", "--host", self.host]
        cmd += ["--port", str(self.port), "--data", str(self.data_dir)]
        if self.memory:
            cmd.append("--memory")
        if "--http" not in self.args:  # many brokers run at once: no fixed HTTP port
            cmd += ["--http", "off"]
        return cmd + self.args

    def start(self, timeout: float = 20.0) -> BrokerProcess:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._listening.clear()
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._kill()
                raise RuntimeError("the broker did not start:\n" + "".join(self.output[-40:]))
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)
            match = LISTENING.search(line)
            if match and not self._listening.is_set():
                self.host, self.port = match.group(1), int(match.group(2))
                self._listening.set()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (graceful shutdown) and wait; returns the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL: a crash, no shutdown at all."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> int:
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        if self._reader is not None:
            self._reader.join(5)
        self.proc = None
        return proc.returncode

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self, *, crash: bool = False, timeout: float = 20.0) -> BrokerProcess:
        """Stop (or SIGKILL with ``crash``) and start again on the same port and data."""
        self.kill() if crash else self.stop()
        return self.start(timeout)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_bytes(self) -> int:
        """The process's resident memory (Linux)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def log(self) -> str:
        return "".join(self.output)

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
