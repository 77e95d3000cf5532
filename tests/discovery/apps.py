"""Services the discovery tests run as processes (``tidings run tests.discovery.apps:X``)."""

from __future__ import annotations

import asyncio
import os

import tidings

VERSION = os.environ.get("APP_VERSION", "1.0.0")
SLOW = float(os.environ.get("APP_SLOW", "0"))


def _service(name: str) -> tidings.Service:
    return tidings.Service(
        name, version=VERSION, grace_period=float(os.environ.get("APP_GRACE", "5"))
    )


orders = _service("orders")
inventory = _service("inventory")
pricing = _service("pricing")


@orders.on("orders.placed")
async def placed(event: dict) -> None:
    await orders.request("pricing.quote", {"sku": event.get("sku", "x")}, timeout=10)


@inventory.on("orders.placed", group="inventory")
async def reserve(event: dict) -> None:
    if event.get("sku") == "broken":
        raise ValueError("cannot reserve a broken sku")


@pricing.reply("pricing.quote")
async def quote(q: dict) -> dict:
    if SLOW:
        await asyncio.sleep(SLOW)
    return {"sku": q["sku"], "cents": 100, "version": VERSION}


drainer = _service("drainer")


@drainer.on("drain.jobs", lease=60)
async def slow_job(job: dict) -> None:
    await asyncio.sleep(float(job.get("seconds", 3)))
