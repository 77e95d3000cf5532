"""API versions of requests: ``svc.request(topic, q, version="2")``.

Every responder consumes its topic (any caller) and ``<topic>.v<major>`` (callers that ask
for its major version; see :func:`~.registration.subjects.versioned_topic`), in the same
group. A versioned request goes to the versioned topic, so only compatible instances serve
it; before sending, the caller checks that some live member consumes that topic and raises
:class:`~tidings.errors.NoInstance` at once rather than timing out. Minor and patch changes
are backward compatible by SemVer and ask nothing of callers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..client.registry.subjects import major_of, versioned_topic
from ..errors import NoInstance, NotFound

if TYPE_CHECKING:
    from ..client import AsyncClient

CONFIRMED_FOR = 5.0  # seconds a positive check is trusted


class VersionRoutes:
    """Resolves a (topic, version) to the versioned topic, checking someone serves it."""

    def __init__(self) -> None:
        self._confirmed: dict[str, float] = {}

    async def topic_for(self, client: AsyncClient, topic: str, version: str) -> str:
        target = versioned_topic(topic, version)
        now = time.monotonic()
        if self._confirmed.get(target, 0.0) > now:
            return target
        try:
            info = await client.topic_info(target)
        except NotFound:
            info = None
        if info is None or not any(g.members > 0 for g in info.groups):
            raise NoInstance(
                f"no live instance serves {topic!r} in version {major_of(version)}: start one "
                f"(a handler with version='{major_of(version)}.x.y') or ask another version; "
                "`tidings services` lists the versions that run"
            )
        self._confirmed[target] = now + CONFIRMED_FOR
        return target
