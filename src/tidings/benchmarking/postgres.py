"""A PostgreSQL cluster for the outbox benchmark: ``initdb`` into a temp dir, loopback only.

The cluster runs with PostgreSQL's durable defaults (fsync and synchronous_commit on) plus
``wal_level=logical`` for the tailing relay. Debian's ``postgresql`` package provides the
binaries (/usr/lib/postgresql/*/bin, or ``$PG_BIN``). PostgreSQL refuses to run as root, so
as root the data dir belongs to the ``postgres`` user and the server runs as it. It is
stopped by its own PID (SIGINT, a fast shutdown; SIGKILL after 20 s). :func:`tree_cpu` is
the CPU time the server and its backends used.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .procs import free_port

INSTALL_HINT = "install it with: apt-get install -y postgresql (or set $PG_BIN)"


def pg_bin_dir() -> Path | None:
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
    """One throwaway cluster: :meth:`start`, :meth:`create_database`, :meth:`stop`."""

    def __init__(self) -> None:
        self.bin = pg_bin_dir()
        self.port = 0
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Postgres:
        if self.bin is None:
            raise RuntimeError(f"PostgreSQL is not installed: {INSTALL_HINT}")
        opts = _as_postgres()
        self.dir = Path(tempfile.mkdtemp(prefix="tidings-bench-pg-"))
        if opts:
            os.chown(self.dir, opts["user"], opts["group"])
        data = self.dir / "data"
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **opts,
        )  # fmt: skip
        self.port = free_port()
        log = self.dir / "postgres.log"
        argv = [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
                "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1",
                "-c", "wal_level=logical", "-c", "max_replication_slots=20",
                "-c", "max_wal_senders=20", "-c", "max_connections=200"]  # fmt: skip
        with open(log, "wb") as out:
            if opts:
                os.chown(log, opts["user"], opts["group"])
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **opts
            )
        deadline = time.monotonic() + timeout
        while subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            check=False,
        ).returncode:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start:\n{text}")
            time.sleep(0.1)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "PostgreSQL is not running"
        return self.proc.pid

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        import psycopg2

        conn = psycopg2.connect(f"postgresql://postgres@127.0.0.1:{self.port}/{database}")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def create_database(self, name: str) -> str:
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

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
