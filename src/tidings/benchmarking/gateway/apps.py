"""The two processes the gateway benchmark puts behind HTTP, besides ``tidings gateway``:

- ``responder``: a tidings service answering ``bench.quote`` (a pydantic ``Quote`` in, a
  ``Price`` out) and declaring ``POST /v1/quotes`` for the gateway
  (``tidings run tidings.benchmarking.gateway.apps:responder``);
- ``fastapi_app``: the hand-written alternative, a minimal FastAPI endpoint ``POST
  /v1/quotes`` that validates the same model and calls the service through one shared
  ``tidings.AsyncClient`` (``uvicorn tidings.benchmarking.gateway.apps:fastapi_app``, the
  broker in ``$TIDINGS_URL``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field

import tidings

TOPIC = "bench.quote"


class Quote(BaseModel):
    sku: str
    qty: int = Field(ge=1)


class Price(BaseModel):
    sku: str
    cents: int


responder = tidings.Service("bench-pricing", heartbeat=1.0, default_middleware=False)


@responder.reply(TOPIC, http="POST /v1/quotes", concurrency=64)
async def quote(q: Quote) -> Price:
    return Price(sku=q.sku, cents=250 * q.qty)


def _fastapi() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import Response

    state: dict[str, tidings.AsyncClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with tidings.AsyncClient(os.environ.get("TIDINGS_URL")) as client:
            state["client"] = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/quotes")
    async def quotes(q: Quote) -> Response:
        reply = await state["client"].request(TOPIC, q.model_dump_json().encode(), timeout=10)
        return Response(reply.body, media_type="application/json")

    return app


def __getattr__(name: str) -> Any:  # the FastAPI app only when asked for (fastapi optional)
    if name == "fastapi_app":
        return _fastapi()
    raise AttributeError(name)
