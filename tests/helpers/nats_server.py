"""Real nats-server processes for tests: one server or a cluster on loopback, and fixtures.

``NatsServer`` runs ``nats-server -js -sd <store> -a 127.0.0.1 -p <free port>`` (plus cluster
and monitoring ports), waits until its ``/healthz`` says JetStream is ready, and stops it by
PID (SIGTERM, then SIGKILL). ``start_cluster(3)`` starts three servers routed to each other.

Fixtures (import them into a conftest.py: ``from tests.helpers.nats_server import *``):

- ``nats_server`` (session): one server shared by the session; ``nats_url`` its URL.
- ``fresh_nats_server`` (function): a server of one's own (to restart or kill).
- ``nats_cluster`` (function): a 3-node cluster; ``.url`` lists every node.

When ``nats-server`` is missing the fixtures skip, or FAIL when ``$CI`` is set (never a silent
skip in CI). The binary is looked up on PATH, then /usr/sbin and /usr/local/bin; ``$NATS_SERVER``
names it explicitly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "NatsCluster",
    "NatsServer",
    "fresh_nats_server",
    "nats_cluster",
    "nats_server",
    "nats_server_binary",
    "nats_url",
    "require_nats_server",
    "start_cluster",
    "start_server",
]

INSTALL_HINT = "install it with: apt-get install -y nats-server (or put it on PATH / $NATS_SERVER)"


def nats_server_binary() -> str | None:
    explicit = os.environ.get("NATS_SERVER")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    found = shutil.which("nats-server")
    if found:
        return found
    for candidate in ("/usr/sbin/nats-server", "/usr/local/bin/nats-server"):
        if os.path.exists(candidate):
            return candidate
    return None


def require_nats_server() -> str:
    """The nats-server binary; skips the test without it, or fails when $CI is set."""
    binary = nats_server_binary()
    if binary is None:
        message = f"nats-server not found; {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return binary


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, even killed (Linux), so an
    interrupted run leaves no server behind."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """One nats-server process with JetStream; ``start``/``stop``/``kill``/``restart``."""

    def __init__(
        self,
        store_dir: str | Path,
        *,
        name: str = "n0",
        port: int | None = None,
        cluster_port: int | None = None,
        routes: list[int] | None = None,
        cluster_name: str = "tidings-test",
        binary: str | None = None,
        jetstream: bool = True,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.name = name
        self.port = port or free_port()
        self.monitor_port = free_port()
        self.cluster_port = cluster_port
        self.routes = routes or []
        self.cluster_name = cluster_name
        self.jetstream = jetstream
        self.binary = binary or require_nats_server()
        self.log_path = self.store_dir.with_suffix(".log")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def args(self) -> list[str]:
        args = [self.binary, "-a", "127.0.0.1"]
        if self.jetstream:
            args += ["-js", "-sd", str(self.store_dir)]
        args += ["-p", str(self.port), "-m", str(self.monitor_port), "-n", self.name]
        if self.cluster_port is not None:
            args += ["--cluster_name", self.cluster_name]
            args += ["--cluster", f"nats://127.0.0.1:{self.cluster_port}"]
            if self.routes:
                args += ["--routes", ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)]
        return args

    def start(self, wait: bool = True, timeout: float = 20.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        self.process = subprocess.Popen(
            self.args(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.monitor_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                return json.loads(resp.read() or b"{}").get("status") == "ok"
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def meta_leader(self) -> str | None:
        """The JetStream meta leader this server knows of (clusters), or None."""
        url = f"http://127.0.0.1:{self.monitor_port}/jsz"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                meta = json.loads(resp.read() or b"{}").get("meta_cluster") or {}
        except (urllib.error.URLError, OSError, ValueError):
            return None
        return meta.get("leader") or None

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until the server accepts clients and JetStream is ready (healthz ok)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"nats-server {self.name} exited early:\n{self.log_tail()}")
            if self.healthy():
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"nats-server {self.name} not ready after {timeout}s:\n{self.log_tail()}"
        )

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
        """SIGKILL: a crash, no clean shutdown."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(5)

    def restart(self, timeout: float = 20.0) -> None:
        self.stop()
        self.start(timeout=timeout)


class NatsCluster:
    """Several routed servers; ``url`` names all of them (clients fail over between them)."""

    def __init__(self, servers: list[NatsServer]) -> None:
        self.servers = servers

    @property
    def url(self) -> str:
        return ",".join(s.url for s in self.servers)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every running node healthy and agreeing on a JetStream meta leader."""
        deadline = time.monotonic() + timeout
        for s in self.servers:
            if s.running:
                s.wait_ready(max(1.0, deadline - time.monotonic()))
        while not all(s.meta_leader() for s in self.servers if s.running):
            if time.monotonic() > deadline:
                raise RuntimeError("the NATS cluster elected no JetStream meta leader in time")
            time.sleep(0.05)

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


def start_server(store_dir: str | Path, **kwargs) -> NatsServer:
    return NatsServer(store_dir, **kwargs).start()


def start_cluster(size: int, base_dir: str | Path, timeout: float = 30.0) -> NatsCluster:
    """``size`` JetStream servers on loopback, each routed to the others."""
    base = Path(base_dir)
    cluster_ports = [free_port() for _ in range(size)]
    servers = [
        NatsServer(
            base / f"n{i}",
            name=f"n{i}",
            cluster_port=cluster_ports[i],
            routes=[p for j, p in enumerate(cluster_ports) if j != i],
        )
        for i in range(size)
    ]
    cluster = NatsCluster(servers)
    try:
        for s in servers:
            s.start(wait=False)
        cluster.wait_ready(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def _tempdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    require_nats_server()
    with _tempdir("tidings-nats-") as tmp:
        server = start_server(tmp / "store")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
def fresh_nats_server() -> Iterator[NatsServer]:
    require_nats_server()
    with _tempdir("tidings-nats-") as tmp:
        server = start_server(tmp / "store")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def nats_cluster() -> Iterator[NatsCluster]:
    require_nats_server()
    with _tempdir("tidings-nats-cluster-") as tmp:
        cluster = start_cluster(3, tmp)
        try:
            yield cluster
        finally:
            cluster.stop()
