"""Server processes for the benchmark: free loopback ports, start, wait, stop by PID, RSS.

Every engine's server is a child process of the runner, bound to 127.0.0.1 with its data in a
temporary directory; it is stopped by its own PID (SIGTERM, then SIGKILL) and nothing else.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(step)


class ServerProcess:
    """One server process: its command, environment and log file, started and stopped by PID."""

    def __init__(
        self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server is not running"
        return self.proc.pid

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self, name: str) -> None:
        if not self.running():
            raise RuntimeError(f"{name} exited early:\n{self.log_tail()}")

    def port_ready(self, name: str, port: int) -> bool:
        """A wait_until probe: raises if the process exited, else whether ``port`` is open."""
        self.check_alive(name)
        return port_open(port)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to our PID; SIGKILL if it is still there after ``timeout`` seconds."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.proc = None

    def rss_bytes(self) -> int:
        """Resident memory of the process and its descendants (Linux /proc)."""
        return tree_rss(self.pid) if self.running() else 0

    def cpu_seconds(self) -> float:
        """CPU time of the process, all its threads (the event loop and the fsync and
        writer threads), in nanoseconds from /proc/PID/task/*/schedstat (Linux; 0.0
        elsewhere). A thread that ended before the call is not counted."""
        total = 0
        try:
            tasks = os.listdir(f"/proc/{self.pid}/task")
        except (OSError, AssertionError):
            return 0.0
        for task in tasks:
            try:
                with open(f"/proc/{self.pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # the thread ended meanwhile
        return total / 1e9

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    tree = _children()
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _rss(p)
        todo.extend(tree.get(p, ()))
    return total
