"""Operator actions from outside the orchestrator: what ``tidings sagas retry|compensate|abort``
and the saga dashboard (``tidings sagas serve``) both call.

Neither has the saga definitions, so neither does the transition: :func:`request_action`
checks the instance's status (a refusal changes nothing) and writes the request to the outbox
table of the orchestrator's database, in one transaction, for the orchestrator's relay to
publish on the saga's reply topic; the instance's owner then does it in order with the
replies. :func:`outcome` finds what became of a request in the history (the entry whose
detail names the request id: ``operator-retry`` ..., or ``action-refused``).
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from ..errors import BadRequest, SagaConflict, SagaNotFound
from ..outbox import Outbox
from . import protocol as p
from .machine import refusal
from .store import SagaRecord, SagaStore


def request_action(
    engine: sa.Engine,
    store: SagaStore,
    outbox: Outbox,
    saga_id: str,
    action: str,
    *,
    reason: str | None = None,
    by: str | None = None,
) -> tuple[p.Action, SagaRecord]:
    """Write the request for ``action`` on ``saga_id``; the request and the instance as it was.
    SagaNotFound, or SagaConflict when the instance's status does not allow the action."""
    if action not in p.ACTIONS:
        raise BadRequest(f"action must be one of {', '.join(p.ACTIONS)}, got {action!r}")
    request = p.Action(saga_id, action, f"op-{uuid.uuid4().hex}", by or p.whoami(), reason)
    with engine.begin() as conn:
        record = store.load(conn, saga_id)
        if record is None:
            raise SagaNotFound(f"no saga {saga_id!r} in this database: see `tidings sagas list`")
        why = refusal(record, action)
        if why is not None:
            raise SagaConflict(why)
        body, headers = p.action_message(request)
        outbox.publish(conn, p.reply_topic(record.name), body, key=saga_id, headers=headers,
                       msg_id=request.request, kind="command")  # fmt: skip
    return request, record


def outcome(
    conn: sa.Connection, store: SagaStore, saga_id: str, request: str
) -> dict[str, Any] | None:
    """The history entry that records what the owner did with ``request`` (None: not yet)."""
    e = store.events
    row = conn.execute(
        sa.select(e.c.at, e.c.step, e.c.event, e.c.detail)
        .where(e.c.saga_id == saga_id, e.c.detail.contains(f"({request})"))
        .order_by(e.c.seq)
    ).first()
    return None if row is None else dict(row._mapping)
