"""A background event-loop thread that runs coroutines for blocking callers (the sync twin)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def _cancel_remaining() -> None:
    """Cancel every other task of the running loop and wait until they have ended."""
    me = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not me]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


class LoopThread:
    """One daemon thread running one event loop; :meth:`call` blocks until a coroutine ends."""

    def __init__(self, name: str = "tidings-sync") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop thread and return its result (or raise its error)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking tidings call was made from its own event loop thread")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def submit(self, start: Callable[[], asyncio.Future[T]]) -> concurrent.futures.Future[T]:
        """Call ``start`` on the loop thread (no Task around it) and return a thread-safe
        future that settles as the asyncio future ``start`` returned does."""
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def copy(fut: asyncio.Future[T]) -> None:
            if fut.cancelled():
                done.cancel()
            elif (exc := fut.exception()) is not None:
                done.set_exception(exc)
            else:
                done.set_result(fut.result())

        def run() -> None:
            try:
                fut = start()
            except BaseException as exc:
                done.set_exception(exc)
            else:
                fut.add_done_callback(copy)

        self.loop.call_soon_threadsafe(run)
        return done

    def stop(self) -> None:
        """Cancel what still runs on the loop (as ``asyncio.run`` does at its end), stop it
        and join the thread. Safe to call twice."""
        if not self._thread.is_alive():
            return
        if threading.current_thread() is not self._thread:
            # Background tasks (memory://'s in-process broker, for one) would otherwise be
            # destroyed pending with the loop: "Task was destroyed but it is pending!"
            with contextlib.suppress(Exception):
                self.call(_cancel_remaining(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()
