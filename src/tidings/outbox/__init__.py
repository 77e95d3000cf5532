"""The transactional outbox: publish in the same database transaction as your rows.

:class:`Outbox` writes messages to an outbox table through the caller's own transaction
(SQLAlchemy, sync or async); :class:`Relay` moves the committed rows to the broker, by polling
the table (any SQL database) or by tailing PostgreSQL's WAL (logical decoding), with one active
relay per outbox. ``tidings.Service(..., outbox=...)`` makes a handler's ``ctx.publish`` write
to the outbox in the handler's transaction. See docs/outbox.md.
"""

from .relay import Relay
from .status import outbox_status
from .table import outbox_table
from .writer import DEFAULT_TABLE, Outbox

__all__ = ["DEFAULT_TABLE", "Outbox", "Relay", "outbox_status", "outbox_table"]
