"""Real redis-server processes for tests, on loopback, with AOF persistence.

``RedisServer(dir)`` runs ``redis-server`` on 127.0.0.1 and a free port with its data in
``dir``, AOF on with ``appendfsync always`` (every write on disk before the reply, the setting
docs/transports.md recommends), no RDB snapshots and no config file; it waits until PING
answers and stops it by PID (SIGTERM, then SIGKILL). ``kill()`` is a crash; ``restart()`` keeps
the data directory, so what survives a restart is what the AOF holds.

Fixtures (import them into a conftest.py):

- ``redis_server`` (session): one server shared by the session;
- ``fresh_redis_server`` (function): a server of one's own (to restart or kill).

When ``redis-server`` is missing the fixtures skip, or FAIL when ``$CI`` is set (never a silent
skip in CI). The binary is looked up on PATH, then /usr/bin and /usr/local/bin; ``$REDIS_SERVER``
names it explicitly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.nats_server import _die_with_parent, free_port

__all__ = [
    "RedisServer",
    "fresh_redis_server",
    "redis_server",
    "redis_server_binary",
    "require_redis_server",
]

INSTALL_HINT = "install it with: apt-get install -y redis-server (or set $REDIS_SERVER)"


def redis_server_binary() -> str | None:
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if os.path.exists(candidate):
            return candidate
    return None


def require_redis_server() -> str:
    """The redis-server binary; skips the test without it, or fails when $CI is set."""
    binary = redis_server_binary()
    if binary is None:
        message = f"redis-server not found; {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return binary


class RedisServer:
    """One redis-server process; ``start``/``stop``/``kill``/``restart``."""

    def __init__(
        self, data_dir: str | Path, *, port: int | None = None, persistence: bool = True
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.persistence = persistence
        self.binary = require_redis_server()
        self.log_path = self.data_dir / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def args(self) -> list[str]:
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port)]
        args += ["--dir", str(self.data_dir), "--logfile", str(self.log_path)]
        args += ["--daemonize", "no", "--protected-mode", "yes", "--save", ""]
        if self.persistence:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        return args

    def start(self, timeout: float = 20.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.args(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.wait_ready(timeout)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"redis-server exited early:\n{self.log_tail()}")
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL: a crash, no clean shutdown (the AOF holds what was fsynced)."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(5)

    def restart(self, timeout: float = 20.0) -> None:
        self.stop()
        self.start(timeout=timeout)


@contextlib.contextmanager
def _server(persistence: bool = True) -> Iterator[RedisServer]:
    require_redis_server()
    tmp = Path(tempfile.mkdtemp(prefix="tidings-redis-"))
    server = RedisServer(tmp, persistence=persistence)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with _server() as server:
        yield server


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    with _server() as server:
        yield server
