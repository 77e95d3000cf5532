"""Version 2: a new optional field (compatible both ways) and a new required field (breaks
BACKWARD: the new reader needs what old messages lack)."""

import pydantic

import tidings


class Quote(pydantic.BaseModel):
    sku: str
    quantity: int = 1
    region: str  # new and required


class Price(pydantic.BaseModel):
    cents: int
    currency: str
    discount: int | None = None  # new and optional


svc = tidings.Service("pricing", version="2.0.0")


@svc.reply("pricing.quote")
async def quote(q: Quote) -> Price:
    return Price(cents=1, currency="EUR")
