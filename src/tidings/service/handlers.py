"""Handler registrations: what ``@svc.on`` and ``@svc.reply`` record about a function.

The payload is the first parameter not annotated :class:`Context` (its annotation is the
payload type); a parameter annotated ``Context`` (or named ``ctx``) gets the context; the
return annotation of a responder is its reply type.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..client.positions import StartPosition, start_position
from ..errors import BadRequest
from ..model import Mode
from ..names import validate_name
from ..resilience.backoff import Backoff
from .context import Context
from .payloads import PayloadType

HandlerFn = Callable[..., Awaitable[Any]]
# ``key_ordered="if-supported"``: one in flight per key where the engine offers it (capability
# key_ordered), a plain shared group elsewhere; for handlers whose own records keep a key's
# handlings apart (saga participants), so the order is a nicety, not what makes them correct
KeyOrdered = bool | Literal["if-supported"]


@dataclass(frozen=True)
class Handler:
    fn: HandlerFn
    name: str  # the operation name (the function's name by default)
    topic: str
    group: str
    responder: bool  # @svc.reply: the return value is the reply
    mode: Mode
    concurrency: int
    lease: float
    max_deliveries: int
    idempotent: bool
    timeout: float | None  # hard limit of one handling, seconds
    backoff: Backoff
    start: StartPosition
    key_ordered: KeyOrdered
    payload: PayloadType
    returns: PayloadType | None  # responders: the reply type
    payload_param: str | None
    context_param: str | None
    description: str | None
    version: str | None = None  # the handler's API version (default: the service's)
    http: str | None = None  # the HTTP face the gateway serves: "POST /v1/quotes"
    prefetch_bytes: int | None = None  # bytes of bodies handled at once at most (None: count)
    positional: bool = False  # payload and context are the first parameters, in that order

    def call(self, payload: Any, ctx: Context) -> Awaitable[Any]:
        """The handler's coroutine for ``payload`` and ``ctx`` (await it)."""
        return self.caller()(payload, ctx)

    def caller(self) -> Callable[[Any, Context], Awaitable[Any]]:
        """``call`` chosen once for this handler's parameters: positional arguments when they
        allow, not a keyword dict built per message."""
        fn, payload_param, context_param = self.fn, self.payload_param, self.context_param
        if self.positional:
            if payload_param is None:
                if context_param is None:
                    return lambda payload, ctx: fn()
                return lambda payload, ctx: fn(ctx)
            if context_param is None:
                return lambda payload, ctx: fn(payload)
            return fn
        return self._call_by_name

    def _call_by_name(self, payload: Any, ctx: Context) -> Awaitable[Any]:
        if self.payload_param is None:
            return self.fn() if self.context_param is None else self.fn(**{self.context_param: ctx})
        if self.context_param is None:
            return self.fn(**{self.payload_param: payload})
        return self.fn(**{self.payload_param: payload, self.context_param: ctx})


def _is_context(annotation: Any) -> bool:
    """``Context`` itself, or an optional one (``Context | None``, ``Optional[Context]``)."""
    if annotation is Context:
        return True
    args = typing.get_args(annotation)
    return (
        typing.get_origin(annotation) in (typing.Union, types.UnionType)
        and Context in args
        and all(arg in (Context, type(None)) for arg in args)
    )


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to what is there
        return {
            k: v for k, v in getattr(fn, "__annotations__", {}).items() if not isinstance(v, str)
        }


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_HTTP_PATH = re.compile(r"^(/(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z0-9._~-]+))+$")


def http_route(spec: str) -> str:
    """Check and normalise an ``http="POST /v1/quotes"`` route (path parameters as
    ``{name}``); raise BadRequest saying what is wrong."""
    parts = str(spec).split()
    if len(parts) != 2 or parts[0].upper() not in HTTP_METHODS or not _HTTP_PATH.match(parts[1]):
        raise BadRequest(
            f"invalid http route {spec!r}: write it as 'METHOD /path', with METHOD one of "
            f"{', '.join(HTTP_METHODS)} and path segments like /v1/refunds/{{id}}"
        )
    return f"{parts[0].upper()} {parts[1]}"


def build_handler(
    fn: HandlerFn,
    *,
    topic: str,
    group: str,
    responder: bool,
    mode: Mode,
    concurrency: int,
    lease: float,
    max_deliveries: int,
    idempotent: bool,
    timeout: float | None,
    backoff: Backoff,
    start: StartPosition,
    key_ordered: KeyOrdered,
    name: str | None,
    version: str | None = None,
    http: str | None = None,
    prefetch_bytes: int | None = None,
) -> Handler:
    """Inspect ``fn`` and check the options; raise TypeError/BadRequest naming the problem."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"handler {fn.__qualname__} must be an `async def` function")
    validate_name("topic", topic)
    validate_name("group", group)
    if concurrency < 1:
        raise BadRequest(f"concurrency must be >= 1, got {concurrency}")
    if prefetch_bytes is not None and (not isinstance(prefetch_bytes, int) or prefetch_bytes < 1):
        raise BadRequest(f"prefetch_bytes must be an integer >= 1 or None, got {prefetch_bytes!r}")
    if timeout is not None and not timeout > 0:
        raise BadRequest(f"timeout must be > 0 seconds or None, got {timeout}")
    start_position(start)  # validates
    if key_ordered not in (True, False, "if-supported"):
        raise BadRequest(f"key_ordered must be True, False or 'if-supported', got {key_ordered!r}")
    hints = _hints(fn)
    payload_param = context_param = None
    payload_type: Any = Any
    params = list(inspect.signature(fn).parameters.values())
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, param.annotation)
        if _is_context(annotation) or (
            param.name in ("ctx", "context") and annotation in (inspect.Parameter.empty, Any)
        ):
            context_param = param.name
        elif payload_param is None:
            payload_param = param.name
            payload_type = annotation
        elif param.default is param.empty:
            raise TypeError(
                f"handler {fn.__qualname__} has an unexpected parameter {param.name!r}: a handler "
                "takes the payload and optionally a tidings.Context"
            )
    # payload, then context, as the first parameters: called positionally (see Handler.caller)
    wanted = [p for p in (payload_param, context_param) if p is not None]
    by_position = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p.name for p in params[: len(wanted)] if p.kind in by_position] == wanted
    returns = None
    if responder:
        returns = PayloadType(hints.get("return", Any))
    return Handler(
        fn=fn,
        name=name or fn.__name__,
        topic=topic,
        group=group,
        responder=responder,
        mode=mode,
        concurrency=concurrency,
        lease=lease,
        max_deliveries=max_deliveries,
        idempotent=idempotent,
        timeout=timeout,
        backoff=backoff,
        start=start,
        key_ordered=key_ordered,
        payload=PayloadType(payload_type),
        returns=returns,
        payload_param=payload_param,
        context_param=context_param,
        description=inspect.getdoc(fn),
        version=version,
        http=http_route(http) if http is not None else None,
        prefetch_bytes=prefetch_bytes,
        positional=positional,
    )
