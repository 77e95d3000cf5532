"""Row locks that wait briefly, set in the statement that takes them (PostgreSQL).

A saga transition's statements run on the event loop's thread, so a row lock another
handling holds must not be waited for without bound: the wait would stall the whole loop.
Each transaction that locks a saga row or a participant's step record sets
``lock_timeout`` for itself (``set_config(..., true)`` is ``SET LOCAL``); after it a lock
wait fails, the transaction rolls back and the handling is retried.

The setting is part of the statement that takes the lock, not a ``SET LOCAL`` of its own: a
common table expression ``lock_wait`` evaluated before the row is locked (the rows of a
``SELECT ... FOR UPDATE`` are locked once the join that produces them has run; an ``INSERT
... SELECT`` takes the row it inserts from it). That is one statement, one round trip, where a
separate ``SET LOCAL`` cost another on every transition and every participant handling.
``tests/sagas/test_locking.py`` holds a row and checks that the other side gives up in time.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

LOCK_TIMEOUT = "5s"
"""How long a transition waits for a row another handling holds; then it rolls back and is
retried. Read at every execution (a statement carries it as a parameter)."""

PARAM = "tidings_lock_timeout"


def lock_wait() -> sa.CTE:
    """``WITH lock_wait AS (SELECT set_config('lock_timeout', :timeout, true) AS timeout)``."""
    setting = sa.func.set_config(
        sa.literal_column("'lock_timeout'"), sa.bindparam(PARAM, type_=sa.String), sa.true()
    )
    return sa.select(setting.label("timeout")).cte("lock_wait")


def params(**values: Any) -> dict[str, Any]:
    """A statement's parameters with the lock timeout in force now."""
    values[PARAM] = LOCK_TIMEOUT
    return values
