"""Where saga instances live: two SQL tables in the user's database (SQLAlchemy).

    tidings_sagas        one row per instance: status, current step, phase, attempt, the token
                         (msg_id of the command it waits for), its deadline, the state (JSON),
                         the per-step record (JSON), the error, a version for optimistic locking
    tidings_saga_events  the history: (saga_id, seq) -> at, step, event, detail

Every function takes a sync ``Connection`` in the caller's transaction: the orchestrator
writes through the transaction that also holds the outbox rows of the commands it sends and
the processed-id record of the reply it consumed. :func:`load` locks the row on PostgreSQL
(``SELECT ... FOR UPDATE``); :func:`save` also checks the version, so two orchestrators
moving one instance at once (a partition handed over mid-handling) cannot both commit.
"""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import sqlalchemy as sa

from ..errors import AlreadyExists, SagaConflict, SagaNotFound
from . import locking

SAGAS = "tidings_sagas"
EVENTS = "tidings_saga_events"

RUNNING = "running"
COMPENSATING = "compensating"
COMPLETED = "completed"
COMPENSATED = "compensated"
FAILED = "failed"  # a compensation failed: an operator must look
ABORTED = "aborted"  # an operator stopped it without compensations (they fixed things by hand)
ACTIVE = (RUNNING, COMPENSATING)
STATUSES = (RUNNING, COMPENSATING, COMPLETED, COMPENSATED, FAILED, ABORTED)


def tables(metadata: sa.MetaData, prefix: str = "tidings") -> tuple[sa.Table, sa.Table]:
    sagas = sa.Table(
        f"{prefix}_sagas",
        metadata,
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("phase", sa.String(12), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("token", sa.String(300)),
        sa.Column("deadline", sa.Float),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("steps", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("failed_step", sa.String(200)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Index(f"ix_{prefix}_sagas_deadline", "status", "deadline"),
        sa.Index(f"ix_{prefix}_sagas_name", "name", "created_at"),
    )
    events = sa.Table(
        f"{prefix}_saga_events",
        metadata,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("saga_id", sa.String(200), nullable=False, index=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("step", sa.String(200)),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text),
    )
    return sagas, events


@dataclass
class SagaRecord:
    """One saga instance as stored (``state`` is JSON text; ``steps`` one dict per step)."""

    id: str
    name: str
    status: str
    step: int
    phase: str
    attempt: int
    token: str | None
    deadline: float | None
    state: str
    steps: list[dict[str, Any]]
    error: str | None = None
    failed_step: str | None = None
    version: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    events: list[tuple[str | None, str, str | None]] = field(default_factory=list)

    def log(self, step: str | None, event: str, detail: str | None = None) -> None:
        """Add a history entry, written with the next :func:`save`."""
        self.events.append((step, event, detail))

    def columns(self) -> dict[str, Any]:
        return {
            "name": self.name, "status": self.status, "step": self.step, "phase": self.phase,
            "attempt": self.attempt, "token": self.token, "deadline": self.deadline,
            "state": self.state, "steps": msgspec.json.encode(self.steps).decode(),
            "error": self.error, "failed_step": self.failed_step,
            "created_at": self.created_at, "updated_at": self.updated_at,
        }  # fmt: skip


class SagaStore:
    """The saga tables on one database."""

    def __init__(self, prefix: str = "tidings") -> None:
        self.metadata = sa.MetaData()
        self.sagas, self.events = tables(self.metadata, prefix)
        t = self.sagas
        self._insert = t.insert()
        self._select = sa.select(t).where(t.c.id == sa.bindparam("saga_id"))
        lock_wait = locking.lock_wait()
        self._select_locked = (
            sa.select(t)
            .select_from(t.join(lock_wait, sa.true()))
            .where(t.c.id == sa.bindparam("saga_id"))
            .with_for_update(of=t)
        )  # PostgreSQL's; elsewhere rows are not locked (the version check remains)
        # SET from the parameters' column names; the WHERE's names must differ from them
        self._update = t.update().where(
            t.c.id == sa.bindparam("where_id"), t.c.version == sa.bindparam("where_version")
        )
        self._insert_events = self.events.insert()

    def create_tables(self, engine: sa.Engine) -> None:
        self.metadata.create_all(engine)

    def _record(self, row: Any) -> SagaRecord:
        m = row._mapping
        return SagaRecord(
            id=m["id"], name=m["name"], status=m["status"], step=m["step"], phase=m["phase"],
            attempt=m["attempt"], token=m["token"], deadline=m["deadline"], state=m["state"],
            steps=msgspec.json.decode(m["steps"]), error=m["error"],
            failed_step=m["failed_step"], version=m["version"], created_at=m["created_at"],
            updated_at=m["updated_at"],
        )  # fmt: skip

    def insert(self, conn: sa.Connection, record: SagaRecord) -> None:
        try:  # a failed insert spoils the caller's transaction: it must roll back anyway
            conn.execute(self._insert, {"id": record.id, "version": 1, **record.columns()})
        except sa.exc.IntegrityError:
            raise AlreadyExists(f"a saga with id {record.id!r} exists already") from None
        record.version = 1
        self._write_events(conn, record)

    def load(self, conn: sa.Connection, saga_id: str, *, lock: bool = True) -> SagaRecord | None:
        if lock and conn.dialect.name == "postgresql":
            row = conn.execute(self._select_locked, locking.params(saga_id=saga_id)).first()
        else:
            row = conn.execute(self._select, {"saga_id": saga_id}).first()
        return None if row is None else self._record(row)

    def save(self, conn: sa.Connection, record: SagaRecord) -> None:
        record.updated_at = time.time()
        result = conn.execute(
            self._update,
            {"where_id": record.id, "where_version": record.version,
             "version": record.version + 1, **record.columns()},
        )  # fmt: skip
        if result.rowcount != 1:
            raise SagaConflict(
                f"saga {record.id} changed meanwhile (version {record.version}): retried"
            )
        record.version += 1
        self._write_events(conn, record)

    def _write_events(self, conn: sa.Connection, record: SagaRecord) -> None:
        if record.events:
            now = record.updated_at or time.time()
            conn.execute(
                self._insert_events,
                [{"saga_id": record.id, "at": now, "step": s, "event": e, "detail": d}
                 for s, e, d in record.events],
            )  # fmt: skip
            record.events = []

    # reading, for the CLI and operators
    def due(self, conn: sa.Connection, now: float, limit: int = 500) -> list[tuple[str, str, str]]:
        """(id, name, token) of active instances whose deadline has passed."""
        t = self.sagas
        query = (
            sa.select(t.c.id, t.c.name, t.c.token)
            .where(t.c.status.in_(ACTIVE), t.c.deadline <= now)
            .order_by(t.c.deadline)
            .limit(limit)
        )
        return [(r[0], r[1], r[2]) for r in conn.execute(query)]

    def list(
        self,
        conn: sa.Connection,
        *,
        status: str | None = None,
        name: str | None = None,
        limit: int = 50,
    ) -> list[SagaRecord]:
        t = self.sagas
        query = sa.select(t).order_by(t.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(t.c.status == status)
        if name is not None:
            query = query.where(t.c.name == name)
        return [self._record(r) for r in conn.execute(query)]

    def counts(self, conn: sa.Connection) -> dict[str, int]:
        t = self.sagas
        rows = conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status))
        return {r[0]: r[1] for r in rows}

    def show(
        self, conn: sa.Connection, saga_id: str
    ) -> tuple[SagaRecord, builtins.list[dict[str, Any]]]:  # `list` here is the method above
        record = self.load(conn, saga_id, lock=False)
        if record is None:
            raise SagaNotFound(f"no saga {saga_id!r} in this database: see `tidings sagas list`")
        e = self.events
        rows = conn.execute(
            sa.select(e.c.at, e.c.step, e.c.event, e.c.detail)
            .where(e.c.saga_id == saga_id)
            .order_by(e.c.seq)
        )
        return record, [dict(r._mapping) for r in rows]
