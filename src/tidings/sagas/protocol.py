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
``tidings-saga-timeout: 1`` and the token it is about. A reply whose body is not such JSON
is still a reply (:attr:`Reply.malformed` says what is wrong): the orchestrator fails the
step it was for at once rather than waiting for the timeout. The msg_id of a command is
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
    step: str | None = None
    """The step the reply says it is for (the ``tidings-saga-step`` header), if it says."""
    malformed: str | None = None
    """What is wrong with the body, when it is not ``{"ok": true|false, ...}``."""


def parse_token(token: str) -> tuple[str, int, str, int] | None:
    """(saga id, step index, phase letter, attempt) of a command's msg_id; None if it is not
    one (the inverse of :func:`command_id`)."""
    parts = token.rsplit(".", 3)
    if len(parts) != 4 or not parts[1].isdigit() or parts[2] not in ("f", "c"):
        return None
    if not parts[3].isdigit() or int(parts[3]) < 1:
        return None
    return parts[0], int(parts[1]), parts[2], int(parts[3])


class MalformedReply(ValueError):
    """A message on the reply topic that is not a reply: what is wrong with it."""


def parse_reply(headers: dict[str, str], body: bytes) -> Reply:
    """The reply a message carries; MalformedReply when it names no saga or no command (it
    cannot be matched to anything). A body that is not a reply gives ``malformed``."""
    saga_id = headers.get(SAGA_ID)
    token = headers.get(h.CORRELATION_ID)
    if not saga_id or not token:
        raise MalformedReply(f"no {SAGA_ID} or {h.CORRELATION_ID} header")
    if headers.get(TIMEOUT):
        return Reply(saga_id, token, timeout=True)
    step = headers.get(STEP) or None
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        return Reply(saga_id, token, False, step=step, malformed=f"the body is not JSON: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        why = 'the body is not {"ok": true|false, ...}'
        return Reply(saga_id, token, False, step=step, malformed=why)
    if data["ok"]:
        return Reply(saga_id, token, False, ok=True, result=data.get("result"), step=step)
    error = str(data.get("error") or "failed")
    return Reply(saga_id, token, timeout=False, ok=False, error=error, step=step)


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
