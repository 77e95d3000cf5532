"""A throwaway PostgreSQL cluster: ``initdb`` into a temp dir, a free loopback port.

The outbox and saga benchmarks run one with PostgreSQL's durable defaults (fsync and
synchronous_commit on) plus ``wal_level=logical`` for the tailing relay; the test suite's
helper (tests/helpers/postgres.py) is this class with fsync off. Debian's ``postgresql``
package provides the binaries (/usr/lib/postgresql/*/bin, or ``$PG_BIN``). PostgreSQL
refuses to run as root, so as root the data dir belongs to the ``postgres`` user and the
server runs as it. It is stopped by its own PID (SIGINT, a fast shutdown; SIGKILL after
20 s). :func:`tree_cpu` is the CPU time the server and its backends used.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar, Self

from .procs import free_port

INSTALL_HINT = "install it with: apt-get install -y postgresql (or set $PG_BIN)"

#: what every cluster here needs: logical decoding for the tailing relay, room for relays
BASE_SETTINGS = {
    "wal_level": "logical",
    "max_replication_slots": "20",
    "max_wal_senders": "20",
    "max_connections": "200",
}


def pg_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or None."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "postgres")):
            return Path(candidate)
    return None


def _as_postgres() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam("postgres")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``, its live children and the children it already reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    own = _stat(pid)
    if own is None:
        return 0.0
    total = sum(int(v) for v in own[11:15])  # utime stime cutime cstime
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry != str(pid):
            fields = _stat(int(entry))
            if fields is not None and fields[1] == str(pid):
                total += int(fields[11]) + int(fields[12])
    return total / tick


class Postgres:
    """One throwaway cluster: :meth:`start` (or ``with``), :meth:`create_database`,
    :meth:`stop`. ``settings`` are server options (``-c name=value``) over the defaults."""

    #: server options of this kind of cluster (subclasses change them)
    defaults: ClassVar[dict[str, str]] = BASE_SETTINGS
    #: extra initdb arguments (``--no-sync`` where durability does not matter)
    initdb_args: ClassVar[tuple[str, ...]] = ()
    prefix: ClassVar[str] = "tidings-bench-pg-"
    host = "127.0.0.1"
    _names = itertools.count(1)

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        self.bin = pg_bin_dir()
        self.settings = {**self.defaults, **(settings or {})}
        self.port = 0
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def start(self, timeout: float = 60.0) -> Self:
        if self.bin is None:
            raise RuntimeError(f"PostgreSQL is not installed: {INSTALL_HINT}")
        opts = _as_postgres()
        self.dir = Path(tempfile.mkdtemp(prefix=self.prefix))
        if opts:
            os.chown(self.dir, opts["user"], opts["group"])
        data = self.dir / "data"
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C", *self.initdb_args],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **opts,
        )  # fmt: skip
        self.port = free_port()
        self.log_path = self.dir / "postgres.log"
        argv = [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
                "-k", str(self.dir), "-c", f"listen_addresses={self.host}"]  # fmt: skip
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        with open(self.log_path, "wb") as out:
            if opts:
                os.chown(self.log_path, opts["user"], opts["group"])
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **opts
            )
        deadline = time.monotonic() + timeout
        while subprocess.run(
            [str(self.bin / "pg_isready"), "-h", self.host, "-p", str(self.port), "-q"],
            check=False,
        ).returncode:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                text = self.log()
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start in {timeout:g}s:\n{text}")
            time.sleep(0.1)
        return self

    def log(self) -> str:
        """The end of the server's log (for error messages)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-4000:]

    @property
    def pid(self) -> int:
        assert self.proc is not None, "PostgreSQL is not running"
        return self.proc.pid

    def url(self, database: str = "postgres", driver: str = "psycopg2") -> str:
        """A SQLAlchemy URL of ``database``."""
        return f"postgresql+{driver}://postgres@{self.host}:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string of ``database``."""
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement in autocommit through psycopg2; its rows."""
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
        """A new empty database (named for this process when no name is given); its URL."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name, driver)

    def kill_backends(self, database: str) -> None:
        """Drop every client connection to ``database`` (what a restart does to them)."""
        self.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
