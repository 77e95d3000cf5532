"""The service framework on a real broker process (`tidings://`) and on real NATS JetStream
(`nats://`), Redis (`redis://`) and RabbitMQ (`amqp://`) servers, not only on memory://:
validation failures dead-letter, failures retry with backoff then dead-letter with the
exception text, long handlers keep their lease, ordered handlers keep per-key order under
concurrency, request/reply with remote errors and timeouts, scatter-gather, and idempotent
consumers skip a redelivered message, a `key_ordered="if-supported"` handler runs on every
engine while `key_ordered=True` is refused at start where the engine lacks it."""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from collections.abc import Iterator

import pytest
from pydantic import BaseModel
from tests.helpers.broker_process import BrokerProcess
from tests.helpers.engines import ENGINES, running_engine
from tests.helpers.nats_server import nats_server  # noqa: F401 - fixture
from tests.helpers.rabbitmq_server import rabbitmq_server  # noqa: F401 - fixture
from tests.helpers.redis_server import redis_server  # noqa: F401 - fixture

import tidings
from tidings import headers as H
from tidings.errors import RemoteError, RequestTimeout

pytestmark = pytest.mark.timeout(120)


class Refund(BaseModel):
    order_id: str
    amount_cents: int


class Query(BaseModel):
    order_id: str


class Status(BaseModel):
    order_id: str
    state: str


@pytest.fixture(scope="module", params=ENGINES)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerProcess]:
    """The engine the services run on (anything with a ``url``)."""
    with running_engine(request, request.param, tmp_path_factory) as engine:
        yield engine


@pytest.fixture
def name() -> str:
    return f"svc.{secrets.token_hex(4)}"


class Outcomes:
    """Collects how handlings ended, and lets a test await a count of them."""

    def __init__(self, svc: tidings.Service) -> None:
        self.items: list = []
        self._changed = asyncio.Event()
        svc.observe(self._seen)

    def _seen(self, handled) -> None:
        self.items.append(handled)
        self._changed.set()

    async def wait(self, count: int, timeout: float = 30.0) -> list:
        async with asyncio.timeout(timeout):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.items


async def dead_letters(url: str, topic: str, group: str, count: int) -> list[tidings.Message]:
    async with tidings.connect(url) as client:
        name = H.dead_letter_topic(topic, group)
        for _ in range(100):
            try:
                await client.topic_info(name)
                break
            except tidings.errors.NotFound:
                await asyncio.sleep(0.1)
        sub = await client.subscribe(name, "inspect")
        out = []
        while len(out) < count:
            msg = await sub.next(timeout=15)
            assert msg is not None, "dead letter did not arrive"
            out.append(msg)
            await msg.ack()
        await sub.close()
        return out


async def test_invalid_payload_is_dead_lettered_at_once(broker: BrokerProcess, name: str):
    svc = tidings.Service("payment", url=broker.url)
    outcomes = Outcomes(svc)

    @svc.on(name, group="payment")
    async def refund(event: Refund) -> None:
        pass

    async with svc.running(), tidings.connect(broker.url) as client:
        await client.publish(name, b'{"order_id": "o-1"}')  # amount_cents missing
        [handled] = await outcomes.wait(1)
        assert handled.outcome == "invalid"
        [dead] = await dead_letters(broker.url, name, "payment", 1)
    assert dead.headers[H.DLQ_REASON] == "rejected"
    assert dead.headers[H.DLQ_DELIVERIES] == "1"
    assert "amount_cents" in dead.headers[H.DLQ_ERROR]


async def test_failures_retry_with_backoff_then_dead_letter(broker: BrokerProcess, name: str):
    svc = tidings.Service("payment", url=broker.url, backoff=tidings.Backoff(initial=0.2, jitter=0))
    outcomes = Outcomes(svc)
    attempts: list[float] = []

    @svc.on(name, group="payment", max_deliveries=3)
    async def refund(event: Refund, ctx: tidings.Context) -> None:
        attempts.append(asyncio.get_running_loop().time())
        raise RuntimeError(f"bank down (attempt {ctx.delivery_count})")

    async with svc.running():
        await svc.publish(name, Refund(order_id="o-1", amount_cents=5))
        await outcomes.wait(3)
        [dead] = await dead_letters(broker.url, name, "payment", 1)
    assert len(attempts) == 3
    # exponential backoff: 0.2 s after the first failure, 0.4 s after the second
    assert attempts[1] - attempts[0] >= 0.18
    assert attempts[2] - attempts[1] >= 0.38
    assert dead.headers[H.DLQ_REASON] == "max-deliveries"
    assert "bank down (attempt 3)" in dead.headers[H.DLQ_ERROR]


async def test_a_long_handler_keeps_its_lease(broker: BrokerProcess, name: str):
    svc = tidings.Service("slow", url=broker.url)
    outcomes = Outcomes(svc)
    deliveries: list[int] = []

    @svc.on(name, lease=0.6)
    async def work(payload: dict, ctx: tidings.Context) -> None:
        deliveries.append(ctx.delivery_count)
        await asyncio.sleep(2.0)  # more than three leases of work

    async with svc.running():
        await svc.publish(name, {"n": 1})
        [handled] = await outcomes.wait(1)
        await asyncio.sleep(1.0)
    assert handled.outcome == "ok"
    assert deliveries == [1]  # never redelivered to a sibling


async def test_ordered_handler_keeps_per_key_order_under_concurrency(
    broker: BrokerProcess, name: str
):
    svc = tidings.Service("ledger", url=broker.url)
    svc.topic(name, partitions=4)
    outcomes = Outcomes(svc)
    seen: dict[str, list[int]] = defaultdict(list)

    @svc.on(name, mode="ordered", concurrency=8)
    async def book(payload: dict, ctx: tidings.Context) -> None:
        await asyncio.sleep(0.001 * (payload["seq"] % 3))
        seen[payload["key"]].append(payload["seq"])

    async with svc.running():
        for seq in range(60):
            key = f"k{seq % 5}"
            await svc.publish(name, {"key": key, "seq": seq}, key=key)
        await outcomes.wait(60)
    for key, seqs in seen.items():
        assert seqs == sorted(seqs), f"{key} out of order: {seqs}"
    assert sum(len(s) for s in seen.values()) == 60


async def test_request_reply_remote_error_and_timeout(broker: BrokerProcess, name: str):
    payment = tidings.Service("payment", url=broker.url)

    @payment.reply(name)
    async def status(query: Query) -> Status:
        if query.order_id == "missing":
            raise LookupError("no such order")
        return Status(order_id=query.order_id, state="refunded")

    caller = tidings.Service("support", url=broker.url)
    async with payment.running(), caller.running():
        answer = await caller.request(name, Query(order_id="o-1"), returns=Status, timeout=10)
        assert answer == Status(order_id="o-1", state="refunded")
        with pytest.raises(RemoteError) as failed:
            await caller.request(name, Query(order_id="missing"), returns=Status, timeout=10)
        assert failed.value.remote_type == "LookupError"
        assert "no such order" in str(failed.value)
        async with tidings.connect(broker.url) as client:  # a topic nobody answers on
            await client.create_topic(f"{name}.nobody")
        with pytest.raises(RequestTimeout):
            await caller.request(f"{name}.nobody", Query(order_id="o-1"), timeout=0.5)


async def test_scatter_gathers_one_reply_per_responder(broker: BrokerProcess, name: str):
    responders = []
    for vendor, price in (("acme", 10), ("globex", 12)):
        svc = tidings.Service(vendor, url=broker.url)

        @svc.reply(name, group=vendor)
        async def quote(query: Query, _price: int = price) -> dict:
            return {"price": _price}

        responders.append(svc)
    caller = tidings.Service("shop", url=broker.url)
    async with responders[0].running(), responders[1].running(), caller.running():
        quotes = await caller.scatter(
            name, Query(order_id="o-1"), returns=dict, timeout=5, max_replies=2
        )
    assert sorted(q["price"] for q in quotes) == [10, 12]


async def test_idempotent_consumer_skips_a_redelivered_message(
    broker: BrokerProcess, name: str, tmp_path
):
    store = tidings.IdempotencyStore(f"sqlite:///{tmp_path / 'processed.db'}")
    svc = tidings.Service("payment", url=broker.url, idempotency=store)
    svc.topic(name, dedup_window=0)  # the broker lets the duplicate through
    outcomes = Outcomes(svc)
    effects: list[str] = []

    @svc.on(name, idempotent=True)
    async def refund(event: Refund) -> None:
        effects.append(event.order_id)

    async with svc.running():
        for _ in range(2):
            await svc.publish(name, Refund(order_id="o-1", amount_cents=5), msg_id="refund-o-1")
        handled = await outcomes.wait(2)
    assert sorted(h.outcome for h in handled) == ["duplicate", "ok"]
    assert effects == ["o-1"]
    store.close()


async def test_key_ordered_if_supported_runs_on_every_engine(broker: BrokerProcess, name: str):
    svc = tidings.Service("audit", url=broker.url)
    outcomes = Outcomes(svc)
    seen: list[int] = []

    @svc.on(name, key_ordered="if-supported")
    async def record(payload: dict) -> None:
        seen.append(payload["n"])

    async with svc.running(), tidings.connect(broker.url) as client:
        for n in range(5):
            await svc.publish(name, {"n": n}, key="k")
        await outcomes.wait(5)
        info = await client.group_info(name, "audit")
        supported = "key_ordered" in client.capabilities
    assert sorted(seen) == list(range(5))
    assert info.spec is not None and info.spec.key_ordered is supported
    if supported:
        assert seen == list(range(5))  # one in flight per key: in publish order


async def test_key_ordered_is_refused_at_start_where_the_engine_lacks_it(
    broker: BrokerProcess, name: str
):
    svc = tidings.Service("audit", url=broker.url)

    @svc.on(name, key_ordered=True)
    async def record(payload: dict) -> None:
        pass

    async with tidings.connect(broker.url) as client:
        supported = "key_ordered" in client.capabilities
    if supported:
        async with svc.running():
            pass
        return
    with pytest.raises(tidings.errors.Unsupported, match="key_ordered"):
        async with svc.running():
            pass
