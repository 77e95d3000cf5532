"""Payload models shared by the service tests."""

from __future__ import annotations

from pydantic import BaseModel


class OrderRefunded(BaseModel):
    order_id: str
    amount: float = 1.0


class StatusQuery(BaseModel):
    order_id: str


class RefundStatus(BaseModel):
    order_id: str
    state: str


class Quote(BaseModel):
    vendor: str
    price: float
