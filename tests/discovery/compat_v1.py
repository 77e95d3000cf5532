"""Version 1 of a service, for the compatibility check tests."""

import pydantic

import tidings


class Quote(pydantic.BaseModel):
    sku: str
    quantity: int = 1


class Price(pydantic.BaseModel):
    cents: int
    currency: str


svc = tidings.Service("pricing", version="1.0.0")


@svc.reply("pricing.quote")
async def quote(q: Quote) -> Price:
    return Price(cents=1, currency="EUR")
