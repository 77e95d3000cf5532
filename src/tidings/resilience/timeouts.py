"""Timeouts: bound one attempt (innermost) or the whole call with its retries (outer).

The bounded block is cancelled for real (the awaited callee work is abandoned, as with
``asyncio.timeout``) and the caller gets :class:`tidings.Timeout`, which is also a
``TimeoutError``. A TimeoutError the callee raised itself passes through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import BadRequest, Timeout
from . import events as ev
from .context import Call, Run


@dataclass
class TimeoutStrategy:
    seconds: float
    scope: str = "attempt"  # or "total"

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise BadRequest(f"{self.scope} timeout must be > 0 seconds (or None for none)")

    async def execute(self, call: Call, run: Run) -> Any:
        cm: Any = None
        try:
            async with run.timer.timeout(self.seconds) as cm:
                return await call()
        except TimeoutError:
            if cm is None or not cm.expired():
                raise
        run.emit(ev.TIMEOUT, detail=self.scope, duration=self.seconds)
        who = f" to {run.callee!r}" if run.callee else ""
        if self.scope == "total":
            what = f"the call{who} with its retries took longer than {self.seconds}s"
        else:
            what = f"attempt {run.attempt}{who} took longer than {self.seconds}s"
        raise Timeout(
            f"{what} (policy {run.policy!r}) and was cancelled: the callee is slow or down; "
            "raise the timeout only if it is expected to be this slow"
        )
