"""What a transport does with a message when it reaches a member, before the application
sees it: the rules the built-in broker applies on dispatch, for engines that lack them.

In order (the first that applies wins):

1. the message's previous lease expired on its last allowed delivery (``count`` is past the
   group's ``max_deliveries``): dead-letter it with reason ``max-deliveries``, counting the
   deliveries that were made (``count - 1``);
2. it was redriven for another group (:func:`tidings.headers.redrive_skips`): settle it
   silently;
3. its TTL has passed: settle it silently, or dead-letter it with reason ``expired`` when the
   group has ``dead_letter_expired``;
4. its delay has not passed: give it back for the remaining delay, and do not count this early
   delivery (the caller records it, so that the application's count excludes it);
5. otherwise deliver it with delivery count ``count``.

``count`` is the number of deliveries the application has had of this message, this one
included (early deliveries of rule 4 excluded by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...headers import redrive_skips
from ...model import GroupSpec
from .timing import expired, remaining_delay

Action = Literal["deliver", "dead-letter", "drop", "defer"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """``action``: deliver it; dead-letter it (``reason``, ``deliveries``); drop it (settle
    without delivering); defer it (give it back for ``delay`` seconds, uncounted)."""

    action: Action
    reason: str = ""
    deliveries: int = 0
    delay: float = 0.0


DELIVER = Verdict("deliver")
DROP = Verdict("drop")


def past_last_lease(count: int, max_deliveries: int) -> bool:
    """True when a delivery numbered ``count`` means the previous lease expired on the last
    allowed delivery (the group's ``max_deliveries``; 0 = unlimited)."""
    return bool(max_deliveries) and count > max_deliveries


def admit(
    spec: GroupSpec,
    count: int,
    *,
    now: float,
    expires_at: float | None = None,
    deliver_at: float | None = None,
    redrive_group: str | None = None,
) -> Verdict:
    """The verdict on a message delivered for the ``count``-th time to group ``spec`` at
    wall-clock ``now`` (see the module docstring for the rules and their order)."""
    if past_last_lease(count, spec.max_deliveries):
        return Verdict("dead-letter", "max-deliveries", count - 1)
    if redrive_skips(spec.name, redrive_group):
        return DROP
    if expired(expires_at, now):
        if spec.dead_letter_expired:
            return Verdict("dead-letter", "expired", count - 1)
        return DROP
    wait = remaining_delay(deliver_at, now)
    if wait > 0:
        return Verdict("defer", delay=wait)
    return DELIVER
