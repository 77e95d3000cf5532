"""Services the gateway tests run as processes (``tidings run tests.gateway.apps:X``)."""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel, Field

import tidings
from tidings.client.registry.subjects import major_of

VERSION = os.environ.get("APP_VERSION", "1.0.0")
MAJOR = major_of(VERSION)
DB = os.environ.get("APP_DB", "sqlite://")


class Quote(BaseModel):
    sku: str
    qty: int = Field(ge=1)


class Price(BaseModel):
    sku: str
    cents: int
    version: str


class Refund(BaseModel):
    order_id: str
    cents: int = Field(gt=0)


class RefundQuery(BaseModel):
    id: str


class RefundStatus(BaseModel):
    id: str
    state: str
    effects: int = 0
    cents: int = 0


class Level(BaseModel):
    sku: str
    count: int


class StockQuery(BaseModel):
    sku: str
    warehouse: int = 1


pricing = tidings.Service("pricing", version=VERSION, heartbeat=1.0)


@pricing.reply("pricing.quote", http=f"POST /v{MAJOR}/quotes")
async def quote(q: Quote) -> Price:
    """A price for a quantity of one SKU."""
    return Price(sku=q.sku, cents=250 * q.qty * int(MAJOR), version=VERSION)


orders = tidings.Service("orders", heartbeat=1.0, idempotency=DB)
refunds: dict[str, RefundStatus] = {}


@orders.on("order.refund", http="POST /v1/refunds", idempotent=True)
async def refund(cmd: Refund, ctx: tidings.Context) -> None:
    """Refund an order (a command: 202 at once, poll the status)."""
    await asyncio.sleep(0.2)
    done = refunds.get(ctx.message_id)
    effects = (done.effects if done else 0) + 1
    refunds[ctx.message_id] = RefundStatus(
        id=ctx.message_id, state="done", effects=effects, cents=cmd.cents
    )


@orders.reply("order.refund.status", http="GET /v1/refunds/{id}")
async def refund_status(q: RefundQuery) -> RefundStatus:
    return refunds.get(q.id) or RefundStatus(id=q.id, state="pending")


stock = tidings.Service("stock", heartbeat=float(os.environ.get("APP_HEARTBEAT", "1")))


@stock.reply("stock.level", http="GET /v1/stock/{sku}")
async def level(q: StockQuery) -> Level:
    return Level(sku=q.sku, count=7 * q.warehouse)


@stock.reply("stock.whoami", http="GET /v1/whoami")
async def whoami(ctx: tidings.Context) -> dict:
    """Who the gateway says is calling, and the trace the call belongs to."""
    return {
        "principal": ctx.headers.get("tidings-principal"),
        "traceparent": ctx.headers.get("traceparent"),
    }


@stock.reply("stock.legacy")  # no http=: the gateway's TOML file routes to it
async def legacy(q: dict) -> dict:
    return {"legacy": q["sku"]}


reports = tidings.Service("reports", heartbeat=1.0)


@reports.reply("reports.build", http="POST /v1/reports")
async def build(req: dict) -> dict:
    await asyncio.sleep(float(os.environ.get("APP_SLOW", "30")))
    return {"built": True}


catalog = tidings.Service("catalog", heartbeat=1.0)  # instance_group from the environment


class Item(BaseModel):
    sku: str


@catalog.reply("catalog.item", http="GET /v1/items/{sku}")
async def item(q: Item) -> dict:
    """Which instance group answered (traffic splitting between groups)."""
    return {"sku": q.sku, "group": catalog.instance_group}
