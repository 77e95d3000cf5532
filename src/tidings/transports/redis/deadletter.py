"""Dead-lettering on redis://: a message to its group's dead-letter topic, atomically.

The copy is built by the shared rules (:mod:`tidings.transports.rules.deadletter`: the
topic's name, the ``tidings-dlq-*`` headers, the last error text given to ``nack``, kept in
the group's errors hash across members); the ``DEAD_LETTER`` script then adds it to the
dead-letter stream and acknowledges the original in one step, if the member still owns it.
The dead-letter topic is created on demand under the source topic's hash tag, so both
streams are in one Redis Cluster slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..rules import deadletter as rules
from .codec import Entry, fields_of
from .errors import translated
from .replies import text

if TYPE_CHECKING:
    from .subscription import RedisSubscription


async def move(
    sub: RedisSubscription, entry: Entry, reason: str, deliveries: int, error: str | None
) -> bool:
    """Dead-letter ``entry`` for ``sub``'s group; False if ``sub`` no longer owns it."""
    spec, k, p, t = sub.spec, sub.keys, entry.partition, sub.transport
    with translated(f"dead-letter a message of group {spec.name!r}"):
        if error is None and entry.raw_count > 1:
            raw = await t.r.hget(k.errors(spec.name, p), entry.entry)
            error = None if raw is None else text(raw)
        dkeys = await t.ensure_dead_letter_topic(sub.topic, k, rules.topic_of(spec))
        copy = rules.copy(
            spec,
            body=entry.body,
            key=entry.key,
            headers=entry.headers,
            partition=p,
            offset=entry.offset,
            message_id=entry.id,
            msg_id=entry.msg_id,
            reason=reason,
            deliveries=deliveries,
            error=error,
        )
        fields = fields_of(copy)
        moved = await t.scripts.dead_letter(
            keys=[
                k.stream(p),
                dkeys.meta,
                dkeys.stream(0),
                k.hold(spec.name, p),
                k.skips(spec.name, p),
                k.errors(spec.name, p),
            ],
            args=[spec.name, sub.member, entry.entry, len(fields), *fields],
        )
    return bool(moved)
