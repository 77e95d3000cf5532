"""Fallback: replace a failure by a value, chosen by exception type (the outermost stage).

``Fallback({CircuitOpen: cached, Timeout: lambda exc: default})``: the first entry whose type
matches the failure gives the result; a callable is called with the exception (and awaited if
it returns an awaitable); anything else is the value itself. Unmatched failures propagate.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ..errors import BadRequest
from . import events as ev
from .context import Call, Run


class Fallback:
    def __init__(
        self,
        handlers: Mapping[type[BaseException] | tuple[type[BaseException], ...], Any],
    ) -> None:
        if not handlers:
            raise BadRequest("a fallback needs at least one {exception type: value} entry")
        self.handlers = list(handlers.items())

    @classmethod
    def value(
        cls, value: Any, on: type[BaseException] | tuple[type[BaseException], ...] = Exception
    ) -> Fallback:
        """A fallback giving ``value`` for failures of type ``on``."""
        return cls({on: lambda exc: value})

    async def execute(self, call: Call, run: Run) -> Any:
        try:
            return await call()
        except Exception as exc:
            for types, handler in self.handlers:
                if isinstance(exc, types):
                    run.emit(ev.FALLBACK, error=exc)
                    result = handler(exc) if callable(handler) else handler
                    if inspect.isawaitable(result):
                        result = await result
                    return result
            raise
