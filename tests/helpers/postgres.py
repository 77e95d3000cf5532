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
import os
from collections.abc import Iterator
from typing import ClassVar

import pytest

from tidings.benchmarking.postgres import BASE_SETTINGS, INSTALL_HINT, Postgres, pg_bin_dir

__all__ = ["PostgresServer", "pg_bin_dir", "pg_url", "postgres_server"]


class PostgresServer(Postgres):
    """The benchmark's cluster without durability: tests do not crash the database itself."""

    defaults: ClassVar[dict[str, str]] = {
        **BASE_SETTINGS,
        "fsync": "off",
        "full_page_writes": "off",
        "synchronous_commit": "on",
        "wal_sender_timeout": "10s",
    }
    initdb_args = ("--no-sync",)
    prefix = "tidings-pg-"


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
