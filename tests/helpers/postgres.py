"""A real PostgreSQL server for tests: ``initdb`` into a temp dir, a free loopback port.

    with PostgresServer() as pg:              # or .start() / .stop()
        url = pg.create_database("shop")      # postgresql+psycopg2://postgres@127.0.0.1:PORT/shop
        ...
        pg.kill_backends("shop")              # drop every client connection (a "restart")

The cluster runs with ``wal_level=logical`` (the outbox's log-tailing relay needs it), trust
authentication on 127.0.0.1 and its Unix socket in the temp dir; fsync is off (tests do not
crash the database itself). Tests run as root, and PostgreSQL refuses to: the data dir is
chowned to the ``postgres`` user and the server runs as it. The server is stopped by its PID
(SIGINT: fast shutdown, then SIGKILL), and the temp dir removed.

Fixtures (import into a conftest.py: ``from tests.helpers.postgres import *``):

- ``postgres_server`` (session): one server for the session.
- ``pg_url`` (function): a fresh database of its own on it, as a SQLAlchemy URL.

The binaries are found in /usr/lib/postgresql/*/bin (Debian's ``postgresql`` package, which
``scripts/test`` installs) or ``$PG_BIN``; when missing the fixtures skip, or FAIL when ``$CI``
is set (never a silent skip in CI).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "pg_bin_dir", "pg_url", "postgres_server"]

INSTALL_HINT = "install it with: apt-get install -y postgresql (or set $PG_BIN)"


def pg_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or None."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "postgres")):
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temp dir, run as the ``postgres`` user when we are root."""

    _names = itertools.count(1)

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        self.bin = pg_bin_dir()
        self.settings = {
            "wal_level": "logical",
            "max_replication_slots": "20",
            "max_wal_senders": "20",
            "max_connections": "200",
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "on",
            "wal_sender_timeout": "10s",
            **(settings or {}),
        }
        self.port = 0
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    # running as root: postgres refuses, so the cluster belongs to the postgres user
    def _user_options(self) -> dict:
        if os.geteuid() != 0:
            return {}
        pw = pwd.getpwnam("postgres")
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, database: str = "postgres", driver: str = "psycopg2") -> str:
        return f"postgresql+{driver}://postgres@{self.host}:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> PostgresServer:
        if self.bin is None:
            raise RuntimeError(f"PostgreSQL is not installed: {INSTALL_HINT}")
        self.dir = Path(tempfile.mkdtemp(prefix="tidings-pg-"))
        self._chown(self.dir)
        data = self.dir / "data"
        opts = self._user_options()
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--no-sync", "--locale=C"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **opts,
        )  # fmt: skip
        self.port = _free_port()
        self.log_path = self.dir / "postgres.log"
        args = [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
                "-k", str(self.dir), "-c", f"listen_addresses={self.host}"]  # fmt: skip
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value}"]
        log = open(self.log_path, "wb")  # noqa: SIM115 - the server writes it while it runs
        self._chown(self.log_path)
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **opts
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited at start:\n{self.log()}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", self.host, "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"postgres did not get ready in {timeout}s:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # administration through psycopg2 (the test extra installs it)
    def execute(self, sql: str, database: str = "postgres") -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(self.dsn(database))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def create_database(self, name: str | None = None, driver: str = "psycopg2") -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name, driver)

    def kill_backends(self, database: str) -> None:
        self.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )


def _require() -> None:
    if pg_bin_dir() is None:
        message = f"PostgreSQL is not installed: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    _require()
    server = PostgresServer().start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    yield url
    # replication slots are per cluster and pin its WAL: drop the ones the test left
    with contextlib.suppress(Exception):
        postgres_server.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            f"WHERE database = '{url.rsplit('/', 1)[1]}' AND NOT active"
        )
