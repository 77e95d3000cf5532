"""What orchestrators and participants say to each other: headers, reply bodies, ids.

A command to a participant is an ordinary command message (its body is the step's payload)
with these headers, keyed by the saga id::

    reply-to            the saga's reply topic, saga.<name>.replies
    correlation-id      the command's msg_id: the token the orchestrator waits for
    tidings-saga-id     the saga instance
    tidings-saga        the saga's name
    tidings-saga-step   the step's name
    tidings-saga-phase  forward | compensate
    tidings-saga-command  (compensations) the topic of the command being undone

A reply goes to ``reply-to`` keyed by the saga id, with the same ``correlation-id`` and
``tidings-saga-id``; its body is JSON ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "..."}``. A timeout is a message on the reply topic with the header
``tidings-saga-timeout: 1`` and the token it is about. The msg_id of a command is
``<saga id>.<step index>.<f|c>.<attempt>``: a transition done twice (a crash before its
commit) writes the same ids, and the broker's dedup absorbs a repeated send.

An operator action (``tidings sagas retry|compensate|abort``, ``Orchestrator.retry`` ...) is
a message on the reply topic too, keyed by the saga id, so the instance's owner handles it in
order with the replies: header ``tidings-saga-action: retry|compensate|abort``,
``correlation-id`` the request's id (``op-<hex>``, also its msg_id), body JSON
``{"by": "...", "reason": "..."}``.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any

import msgspec

from .. import headers as h

SAGA_ID = "tidings-saga-id"
SAGA = "tidings-saga"
STEP = "tidings-saga-step"
PHASE = "tidings-saga-phase"
COMMAND = "tidings-saga-command"
TIMEOUT = "tidings-saga-timeout"
ACTION = "tidings-saga-action"

RETRY = "retry"
ABORT = "abort"
ACTIONS = (RETRY, "compensate", ABORT)  # "compensate" is also the COMPENSATE phase's name

FORWARD = "forward"
COMPENSATE = "compensate"


def reply_topic(saga: str) -> str:
    return f"saga.{saga}.replies"


def command_id(saga_id: str, step: int, phase: str, attempt: int) -> str:
    return f"{saga_id}.{step}.{phase[0]}.{attempt}"


def timeout_id(token: str) -> str:
    return f"{token}.timeout"


def command_headers(
    saga: str, saga_id: str, step: str, phase: str, token: str, command: str | None = None
) -> dict[str, str]:
    out = {
        h.REPLY_TO: reply_topic(saga),
        h.CORRELATION_ID: token,
        SAGA_ID: saga_id,
        SAGA: saga,
        STEP: step,
        PHASE: phase,
    }
    if command is not None:
        out[COMMAND] = command
    return out


def reply_headers(command_headers: dict[str, str]) -> dict[str, str]:
    return {
        h.CORRELATION_ID: command_headers.get(h.CORRELATION_ID, ""),
        SAGA_ID: command_headers.get(SAGA_ID, ""),
        STEP: command_headers.get(STEP, ""),
    }


def encode_reply(ok: bool, result: Any = None, error: str | None = None) -> bytes:
    body: dict[str, Any] = {"ok": ok}
    if ok:
        body["result"] = result
    else:
        body["error"] = error or "failed"
    return msgspec.json.encode(body)


@dataclass(frozen=True)
class Reply:
    """A decoded reply (or a timeout) on a saga's reply topic."""

    saga_id: str
    token: str
    timeout: bool
    ok: bool = False
    result: Any = None
    error: str | None = None


class MalformedReply(ValueError):
    """A message on the reply topic that is not a reply: what is wrong with it."""


def parse_reply(headers: dict[str, str], body: bytes) -> Reply:
    saga_id = headers.get(SAGA_ID)
    token = headers.get(h.CORRELATION_ID)
    if not saga_id or not token:
        raise MalformedReply(f"no {SAGA_ID} or {h.CORRELATION_ID} header")
    if headers.get(TIMEOUT):
        return Reply(saga_id, token, timeout=True)
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedReply(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        raise MalformedReply('the body is not {"ok": true|false, ...}')
    if data["ok"]:
        return Reply(saga_id, token, timeout=False, ok=True, result=data.get("result"))
    return Reply(saga_id, token, timeout=False, ok=False, error=str(data.get("error") or "failed"))


@dataclass(frozen=True)
class Action:
    """An operator's request: retry, compensate or abort an instance."""

    saga_id: str
    action: str
    request: str
    by: str
    reason: str | None = None


def whoami() -> str:
    """Who acts, when the operator does not say (``by=``, ``--by``): the user name."""
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without one)
        return "unknown"


def action_message(action: Action) -> tuple[bytes, dict[str, str]]:
    body = msgspec.json.encode({"by": action.by, "reason": action.reason})
    headers = {SAGA_ID: action.saga_id, ACTION: action.action, h.CORRELATION_ID: action.request}
    return body, headers


def parse_action(headers: dict[str, str], body: bytes) -> Action | None:
    """The action a message on the reply topic asks for; None if it is not one."""
    action = headers.get(ACTION)
    if action is None:
        return None
    saga_id, request = headers.get(SAGA_ID), headers.get(h.CORRELATION_ID)
    if action not in ACTIONS or not saga_id or not request:
        raise MalformedReply(f"an action needs {ACTION} in {ACTIONS}, {SAGA_ID}, correlation-id")
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedReply(f"the action's body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedReply('the action\'s body is not {"by": ..., "reason": ...}')
    reason = data.get("reason")
    return Action(saga_id, action, request, str(data.get("by") or "?"),
                  None if reason is None else str(reason))  # fmt: skip
