"""The sync twin of a pipeline: the same async pipeline run on one background event loop.

``pipeline.sync.run(fn, *args)`` calls a plain function (in a worker thread) or a coroutine
function through the pipeline and blocks for the result; ``@pipeline.sync`` decorates a plain
function. A timeout stops the wait and raises :class:`tidings.Timeout`, but a thread cannot be
killed: a timed-out sync function runs on in its worker thread and its result is dropped.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from .pipeline import Pipeline

P = ParamSpec("P")
T = TypeVar("T")


class SyncPipeline:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _portal(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever,
                    name=f"tidings-policy-{self.pipeline.name}",
                    daemon=True,
                ).start()
                self._loop = loop
            return self._loop

    def run(
        self, fn: Callable[..., Any], *args: Any, callee: str | None = None, **kwargs: Any
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` through the pipeline and return its result."""
        if inspect.iscoroutinefunction(fn):
            target = fn
        else:

            async def target(*a: Any, **k: Any) -> Any:
                return await asyncio.to_thread(fn, *a, **k)

        coro = self.pipeline.run(target, *args, callee=callee, **kwargs)
        return asyncio.run_coroutine_threadsafe(coro, self._portal()).result()

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        callee = getattr(fn, "__qualname__", None)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            result: T = self.run(fn, *args, callee=callee, **kwargs)
            return result

        return wrapper

    def close(self) -> None:
        """Stop the background loop (a later call starts a new one)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
