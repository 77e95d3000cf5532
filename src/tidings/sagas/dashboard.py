"""The saga dashboard, served by ``tidings sagas serve --db URL``: saga instances as the
orchestrators stored them, and the operator actions, in a browser.

    /                      counts per status; the instances, newest first (?status=, ?saga=)
    /sagas/ID              one instance: status, current and failed step, error, state, its
                           steps (attempts, compensations, times) and its history; buttons
                           retry, compensate, abort (with a reason)
    /api/sagas             the list as JSON (?status=, ?saga=, ?limit=)
    /api/sagas/ID          one instance with its history as JSON
    POST /api/sagas/ID/retry|compensate|abort   {"reason": ..., "by": ...}: 202 and the
                           request id; 404 unknown saga, 409 not allowed in its status

The saga tables live in the application's database, not in the broker, so this is its own
small server rather than a page of the broker's dashboard; it looks like that dashboard (the
same style, the same live refresh of ``data-live`` parts) and its buttons go through
:mod:`.operations`, the code ``tidings sagas retry|compensate|abort`` runs. It has no login:
it binds 127.0.0.1 unless told otherwise; put it behind your own authentication before
exposing it.
"""

from __future__ import annotations

import contextlib
import datetime
import html
import json
import socket
import sys
from collections.abc import Iterator
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

import msgspec
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import BadRequest, SagaNotFound, TidingsError
from ..outbox import Outbox
from ..server.management.dashboard import STYLE
from . import protocol as p
from .operations import request_action
from .store import ACTIVE, STATUSES, SagaRecord, SagaStore

SCRIPT = """
document.addEventListener("click", function (ev) {
  var b = ev.target.closest ? ev.target.closest("button[data-action]") : null;
  if (!b) { return; }
  var ask = b.getAttribute("data-confirm");
  if (ask && !window.confirm(ask)) { return; }
  var out = document.getElementById("result");
  var reason = document.getElementById("reason");
  b.disabled = true;
  fetch(b.getAttribute("data-action"), {
    method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({reason: reason && reason.value ? reason.value : null})
  }).then(function (r) { return r.json().then(function (j) { return [r.ok, j]; }); })
    .then(function (a) {
      out.textContent = a[0] ? (a[1].action + " requested (" + a[1].request + ")") : a[1].message;
      out.className = a[0] ? "" : "alarm";
    })
    .catch(function (err) { out.textContent = err.message; out.className = "alarm"; })
    .finally(function () { b.disabled = false; });
});
"""
EXTRA_STYLE = ".s-failed,.s-aborted{color:#b00020;font-weight:bold}.s-compensating{color:#a05a00}"
LIMIT = 200


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _status(status: str) -> str:
    return f"<span class='s-{html.escape(status)}'>{html.escape(status)}</span>"


def _table(table_id: str, headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table id='{table_id}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, body: str) -> HTMLResponse:
    e = html.escape
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{e(title)} - tidings sagas"
        f"</title><style>{STYLE}{EXTRA_STYLE}</style></head><body data-refresh='1000'>"
        "<header><b>tidings sagas</b><a href='/'>Sagas</a><a href='/api/sagas'>API</a>"
        "<span id='refreshed'></span></header>"
        f"<main><h1>{e(title)}</h1>{body}</main>"
        "<script src='/static/dashboard.js'></script>"
        f"<script>{SCRIPT}</script></body></html>"
    )


def current_step(record: SagaRecord) -> str:
    if record.status in ACTIVE and record.steps:
        return f"{record.steps[record.step]['name']} ({record.phase} #{record.attempt})"
    return "-"


def summary(record: SagaRecord) -> dict[str, Any]:
    return {
        "id": record.id, "saga": record.name, "status": record.status,
        "step": record.steps[record.step]["name"] if record.steps else None,
        "phase": record.phase, "attempt": record.attempt, "deadline": record.deadline,
        "failed_step": record.failed_step, "error": record.error,
        "created_at": record.created_at, "updated_at": record.updated_at,
    }  # fmt: skip


class SagaDashboard:
    """The pages and the API over one orchestrator database."""

    def __init__(self, engine: sa.Engine, prefix: str = "tidings",
                 outbox_table: str = "tidings_outbox") -> None:  # fmt: skip
        self.engine = engine
        self.store = SagaStore(prefix)
        self.outbox = Outbox(engine, outbox_table)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/", self.list_page),
            Route("/sagas/{saga_id:path}", self.saga_page),
            Route("/api/sagas", self.list_api),
            Route("/api/sagas/{saga_id}/{action}", self.act_api, methods=["POST"]),
            Route("/api/sagas/{saga_id:path}", self.saga_api),
            Route("/static/dashboard.js", self.script),
        ])  # fmt: skip

    # reading
    def _list(self, request: Request) -> tuple[dict[str, int], list[SagaRecord]]:
        status = request.query_params.get("status") or None
        if status is not None and status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        name = request.query_params.get("saga") or None
        try:
            limit = max(1, min(1000, int(request.query_params.get("limit", LIMIT))))
        except ValueError:
            raise BadRequest("limit must be a number") from None
        with self.engine.connect() as conn:
            counts = self.store.counts(conn)
            records = self.store.list(conn, status=status, name=name, limit=limit)
        return counts, records

    def _show(self, saga_id: str) -> tuple[SagaRecord, list[dict[str, Any]]]:
        with self.engine.connect() as conn:
            return self.store.show(conn, saga_id)

    # pages
    def list_page(self, request: Request) -> Response:
        try:
            counts, records = self._list(request)
        except TidingsError as exc:
            return _error(exc, page=True)
        e = html.escape
        chosen = request.query_params.get("status") or ""
        cards = [f"<a class='card' href='/'>all<b>{sum(counts.values()):,}</b></a>"]
        for status in STATUSES:
            style = " style='outline:2px solid #1f3a5f'" if status == chosen else ""
            cards.append(
                f"<a class='card' id='count-{status}' href='/?{urlencode({'status': status})}'"
                f"{style}>{e(status)}<b>{counts.get(status, 0):,}</b></a>"
            )
        rows = [
            [f"<a href='/sagas/{quote(r.id, safe='')}'>{e(r.id)}</a>", e(r.name),
             _status(r.status), e(current_step(r)), e(r.failed_step or ""),
             e((r.error or "")[:120]), _when(r.created_at), _when(r.updated_at)]
            for r in records
        ]  # fmt: skip
        cols = ["id", "saga", "status", "current step", "failed step", "error", "started",
                "updated"]  # fmt: skip
        shown = f" ({e(chosen)})" if chosen else ""
        empty = "" if records else "<p id='none'>No saga instances here.</p>"
        body = (
            f"<div id='counts' class='cards' data-live>{''.join(cards)}</div>"
            f"<h2>Instances{shown}, newest first</h2>"
            f"<div id='list' data-live>{_table('sagas', cols, rows)}{empty}</div>"
        )
        return _page("Sagas", body)

    def saga_page(self, request: Request) -> Response:
        saga_id = request.path_params["saga_id"]
        try:
            record, events = self._show(saga_id)
        except TidingsError as exc:
            return _error(exc, page=True)
        e = html.escape
        state = json.dumps(msgspec.json.decode(record.state), indent=2, default=str)
        cards = "".join(
            f"<div class='card'>{e(label)}<b id='{key}'>{value}</b></div>"
            for label, key, value in (
                ("status", "status", _status(record.status)), ("saga", "name", e(record.name)),
                ("current step", "current", e(current_step(record))),
                ("failed step", "failed", e(record.failed_step or "-")),
            )
        )  # fmt: skip
        error = f"<p id='error' class='alarm'>{e(record.error)}</p>" if record.error else ""
        steps = [
            [str(i), e(s["name"]), _status(s["status"]), str(s.get("attempts", 0)),
             str(s.get("compensations", 0)), _when(s.get("started_at")),
             _when(s.get("finished_at")), e(s.get("error") or "")]
            for i, s in enumerate(record.steps)
        ]  # fmt: skip
        history = [
            [_when(ev["at"]), f"{ev['at'] - record.created_at:.3f}", e(ev["step"] or ""),
             e(ev["event"]), e(ev["detail"] or "")]
            for ev in events
        ]  # fmt: skip
        api = f"/api/sagas/{quote(saga_id, safe='')}"
        buttons = " ".join(
            f"<button data-action='{api}/{action}'{confirm}>{action}</button>"
            for action, confirm in (
                (p.RETRY, ""), ("compensate", ""),
                (p.ABORT, " data-confirm='Abort this saga without compensating anything?'"),
            )
        )  # fmt: skip
        actions = (
            "<h2>Operator actions</h2><p>retry sends the current step's (or compensation's) "
            "command again; compensate undoes the completed steps, last first (before the "
            "pivot only); abort stops the saga without compensations (after fixing things by "
            "hand). The saga's orchestrator does it; the history below shows when.</p>"
            "<p><input id='reason' placeholder='reason (kept in the history)' size='50'> "
            f"{buttons}</p><p id='result'></p>"
        )
        step_cols = ["#", "step", "status", "attempts", "compensations", "started", "finished",
                     "error"]  # fmt: skip
        body = (
            f"<div id='summary' data-live><div class='cards'>{cards}</div>{error}</div>"
            f"{actions}<h2>State</h2><div id='state' data-live><pre>{e(state)}</pre></div>"
            "<h2>Steps</h2><div id='steps-box' data-live>"
            + _table("steps", step_cols, steps)
            + "</div><h2>History</h2><div id='history-box' data-live>"
            + _table("history", ["at", "+s", "step", "event", "detail"], history)
            + "</div>"
        )
        return _page(f"Saga {record.id}", body)

    def script(self, request: Request) -> Response:
        static = resources.files("tidings.server.management").joinpath("static/dashboard.js")
        return Response(static.read_text(), media_type="text/javascript")

    # the API
    def list_api(self, request: Request) -> Response:
        try:
            counts, records = self._list(request)
        except TidingsError as exc:
            return _error(exc)
        return JSONResponse({"counts": counts, "sagas": [summary(r) for r in records]})

    def saga_api(self, request: Request) -> Response:
        try:
            record, events = self._show(request.path_params["saga_id"])
        except TidingsError as exc:
            return _error(exc)
        return JSONResponse({**summary(record), "state": msgspec.json.decode(record.state),
                             "steps": record.steps, "events": events})  # fmt: skip

    async def act_api(self, request: Request) -> Response:
        saga_id, action = request.path_params["saga_id"], request.path_params["action"]
        try:
            try:
                body = await request.json() if await request.body() else {}
            except ValueError:
                raise BadRequest('the body must be JSON: {"reason": ..., "by": ...}') from None
            if not isinstance(body, dict):
                raise BadRequest('the body must be a JSON object: {"reason": ..., "by": ...}')
            reason = body.get("reason")
            by = body.get("by") or "dashboard"
            from starlette.concurrency import run_in_threadpool

            made, record = await run_in_threadpool(
                request_action, self.engine, self.store, self.outbox, saga_id, action,
                reason=None if reason is None else str(reason), by=str(by),
            )  # fmt: skip
        except TidingsError as exc:
            return _error(exc)
        return JSONResponse(
            {"id": saga_id, "action": action, "request": made.request, "by": made.by,
             "status": record.status},
            status_code=202,
        )  # fmt: skip


def _error(exc: TidingsError, page: bool = False) -> Response:
    status = 404 if isinstance(exc, SagaNotFound) else exc.http_status
    if page:
        body = f"<p class='alarm'>{html.escape(exc.message)}</p><p><a href='/'>All sagas</a></p>"
        response = _page("Error", body)
        response.status_code = status
        return response
    return JSONResponse({"code": exc.code, "message": exc.message}, status_code=status)


def create_app(db: str, *, prefix: str = "tidings", outbox_table: str = "tidings_outbox") -> Any:
    """The dashboard's ASGI app over the orchestrator database at SQLAlchemy URL ``db``."""
    return SagaDashboard(sa.create_engine(db), prefix, outbox_table).app()


async def serve(app: Any, host: str = "127.0.0.1", port: int = 7480) -> None:
    """Serve ``app`` with uvicorn until SIGTERM/SIGINT (then return: exit code 0). Prints
    ``saga dashboard on http://HOST:PORT/`` once bound (port 0 picks a free one)."""
    import uvicorn

    class Server(uvicorn.Server):
        # uvicorn re-raises a captured SIGTERM after its graceful stop (exit code -15)
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    getattr(self, "_captured_signals", []).clear()

    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        raise BadRequest(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = sock.getsockname()
    print(f"saga dashboard on http://{bound[0]}:{bound[1]}/", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    await Server(config).serve(sockets=[sock])
