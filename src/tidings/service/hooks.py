"""Middleware as plain calls: the enter/leave hooks that stand for a ``handle`` or ``publish``
coroutine around ``call_next``.

A built-in middleware whose hook is not overridden gives ``(enter, leave)``: ``token =
enter(item)`` runs where its coroutine would run before ``call_next``, ``leave(item, token,
error)`` where it would run after (``error`` None on success, else what ``call_next`` raised;
``leave`` may raise instead, or be None when there is nothing to do after). In
``svc.publish`` a publish enter may see ``call.message.msg_id`` None: the id is then given by
the client with its batch (from the same generator) and set by the time the leaves run.
:class:`Hooks` runs a stack of them, outermost first in and last out, with the same error
flow as nested coroutines: a leave that raises is what the hooks outside it see; an enter that
raises has the ones entered before it leave with its error.

Three built-in coroutines (registration statistics, tracing, logging) made, stepped and
finished per message were a third of the framework's consume cost; as hooks the consumer runs
them inline, and ``svc.publish`` / ``svc.publish_many`` run them without a coroutine per
message at all when every publish middleware gives hooks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Enter = Callable[[Any], Any]
Leave = Callable[[Any, Any, "BaseException | None"], None]
HookPair = tuple[Enter, Leave | None]


class Hooks:
    """A stack of hooks, outermost first."""

    __slots__ = ("enters", "hooks", "leaves")

    def __init__(self, hooks: Sequence[HookPair]) -> None:
        self.hooks = tuple(hooks)
        self.enters = tuple(enter for enter, _ in self.hooks)
        self.leaves = tuple(leave for _, leave in self.hooks)

    def enter(self, item: Any) -> list[Any]:
        """Every hook's enter, outermost first; their tokens. If one raises, the ones entered
        before it leave with its error and it propagates."""
        tokens: list[Any] = []
        append = tokens.append
        try:
            for enter in self.enters:
                append(enter(item))
        except BaseException as exc:
            error = self.leave(item, tokens, exc)
            assert error is not None
            raise error  # noqa: B904  # exc itself, or what a leave raised on it
        return tokens

    def leave(
        self, item: Any, tokens: list[Any], error: BaseException | None
    ) -> BaseException | None:
        """The entered hooks' leave, innermost first, each told how the chain inside it ended
        (``error``, or what an inner leave raised instead); how it all ended (None: well)."""
        leaves = self.leaves
        for i in range(len(tokens) - 1, -1, -1):
            leave = leaves[i]
            if leave is not None:
                try:
                    leave(item, tokens[i], error)
                except BaseException as exc:
                    error = exc
        return error

    async def around(self, item: Any, inner: Callable[[Any], Awaitable[Any]]) -> Any:
        """``await inner(item)`` inside the hooks."""
        tokens = self.enter(item)
        try:
            result = await inner(item)
        except BaseException as exc:
            error = self.leave(item, tokens, exc)
            assert error is not None
            raise error  # noqa: B904  # exc itself, or what a leave raised on it
        error = self.leave(item, tokens, None)
        if error is not None:
            raise error
        return result
