"""Fixtures for the refund example: each test gets fresh service state and its own
idempotency database."""

from __future__ import annotations

import pytest

from examples.refund import inventory, notification, order, payment

SERVICES = (order, inventory, payment, notification)


@pytest.fixture(autouse=True)
def fresh_state(tmp_path):
    inventory.stock.clear()
    payment.refunds.clear()
    notification.sent.clear()
    saved = {m: (m.svc.url, m.svc.idempotency) for m in SERVICES}
    for m in SERVICES:
        m.svc.idempotency = f"sqlite:///{tmp_path / (m.svc.name + '.sqlite3')}"
    yield
    for m, (url, idem) in saved.items():
        m.svc.url, m.svc.idempotency = url, idem
