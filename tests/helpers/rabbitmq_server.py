"""A real rabbitmq-server for tests: its own node, cookie, ports, epmd and data dirs.

``RabbitServer(tmp)`` starts ``/usr/lib/rabbitmq/bin/rabbitmq-server`` (Debian's package; the
``/usr/sbin`` wrapper would switch to the ``rabbitmq`` user and the system's data dirs) with
everything of its own under ``tmp``: ``HOME`` (so the Erlang cookie is fresh), the node name
``tidings-<random>@localhost``, the mnesia and log dirs, a config file with the AMQP listener
and the management plugin's HTTP listener on free loopback ports, and an ``epmd`` it starts
itself on a free port (``ERL_EPMD_PORT``), so it never meets the machine's other Erlang nodes.
Startup takes seconds (tens on a loaded machine): one server per test session (fixture
``rabbitmq_server``). ``stop()`` sends SIGTERM to the server's process group, then SIGKILL,
and stops its epmd by PID; ``kill()`` signals the node alone and ``start()`` brings it back on
the same data dir and ports. ``ctl(...)`` runs ``rabbitmqctl`` against the node (for instance
``close_all_connections``).

When rabbitmq-server is missing the fixture skips, or FAILS when ``$CI`` is set.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import pytest

from .nats_server import _die_with_parent, free_port

__all__ = ["RabbitServer", "rabbitmq_binary", "rabbitmq_server", "require_rabbitmq"]

INSTALL_HINT = "install it with: apt-get install -y rabbitmq-server (or set $RABBITMQ_SERVER)"
START_TIMEOUT = 120.0  # the management plugin makes a cold start slow on a busy machine


def rabbitmq_binary() -> str | None:
    explicit = os.environ.get("RABBITMQ_SERVER")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    for candidate in ("/usr/lib/rabbitmq/bin/rabbitmq-server", shutil.which("rabbitmq-server")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def require_rabbitmq() -> str:
    binary = rabbitmq_binary()
    if binary is None or shutil.which("epmd") is None:
        message = f"rabbitmq-server (or epmd) not found; {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return binary


class RabbitServer:
    """One RabbitMQ node with the management plugin, on loopback."""

    def __init__(self, base: str | Path, binary: str | None = None) -> None:
        self.base = Path(base)
        self.binary = binary or require_rabbitmq()
        self.node = f"tidings-{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.management_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.log_path = self.base / "server.log"
        self.process: subprocess.Popen | None = None
        self.epmd: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return (
            f"amqp://guest:guest@127.0.0.1:{self.port}/"
            f"?management=http://127.0.0.1:{self.management_port}"
        )

    def _env(self) -> dict[str, str]:
        b = self.base
        env = dict(os.environ)
        env.update(
            HOME=str(b / "home"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_MNESIA_BASE=str(b / "mnesia"),
            RABBITMQ_LOG_BASE=str(b / "log"),
            RABBITMQ_LOGS="-",
            RABBITMQ_CONFIG_FILE=str(b / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(b / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(b / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(b / "rabbitmq.pid"),
        )
        env.pop("RABBITMQ_CONF_ENV_FILE", None)
        return env

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n <node> args...`` (its own cookie, epmd port) and return stdout."""
        binary = os.path.join(os.path.dirname(self.binary), "rabbitmqctl")
        done = subprocess.run(
            [binary, "-n", self.node, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done.stdout

    def close_all_connections(self, reason: str = "test") -> None:
        self.ctl("close_all_connections", reason)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 60.0) -> None:
        """Send ``sig`` to the node's process group and wait for it to end (epmd stays), for
        ``start()`` again on the same data: SIGKILL a crash, SIGTERM a clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            self.process.wait(timeout)

    def start(self, timeout: float = START_TIMEOUT) -> RabbitServer:
        b = self.base
        for sub in ("home", "mnesia", "log"):
            (b / sub).mkdir(parents=True, exist_ok=True)
        (b / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"management.tcp.port = {self.management_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            "collect_statistics_interval = 500\n"
        )
        (b / "advanced.config").write_text("[].\n")
        (b / "enabled_plugins").write_text("[rabbitmq_management].\n")
        env = self._env()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child processes own it
        if self.epmd is None or self.epmd.poll() is not None:  # kept across kill() + start()
            self.epmd = subprocess.Popen(
                ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.process = subprocess.Popen(
            [self.binary],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(b),
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _management_ok(self) -> bool:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.management_port}/api/overview",
            headers={"Authorization": "Basic " + b64encode(b"guest:guest").decode()},
        )
        try:
            with urllib.request.urlopen(request, timeout=1.0) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _amqp_ok(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0),
        ):
            return True
        return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"rabbitmq-server exited early:\n{self.log_tail()}")
            if self._amqp_ok() and self._management_ok():
                return
            time.sleep(0.25)
        raise RuntimeError(f"rabbitmq-server not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the server's process group (the script and the Erlang VM), SIGKILL
        after ``timeout``; then its epmd."""
        if self.process is not None and self.process.poll() is None:
            pgid = self.process.pid  # start_new_session: the group is the server's own
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                self.process.wait(5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)  # anything of the VM's left behind
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.terminate()
            try:
                self.epmd.wait(5)
            except subprocess.TimeoutExpired:
                self.epmd.kill()
                self.epmd.wait(5)


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitServer]:
    require_rabbitmq()
    tmp = Path(tempfile.mkdtemp(prefix="tidings-rabbitmq-"))
    try:
        server = RabbitServer(tmp).start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
