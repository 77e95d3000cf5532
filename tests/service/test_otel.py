"""OpenTelemetry spans (``Service(tracing="otel")``) across two services over a real broker
process, read back from the SDK's in-memory exporter: a request/reply and an event chain each
stay in one trace with the right parents and kinds (PRODUCER send, CONSUMER process, CLIENT
ack/nack/reject) and the messaging attributes; a batch span links to every message's trace
instead of taking one as its parent; a service without it does not import opentelemetry."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tests.helpers.broker_process import BrokerProcess

import tidings
from tidings import headers as H
from tidings.errors import BadRequest
from tidings.service.otel import OpenTelemetryMiddleware, batch_span

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path_factory.mktemp("otel-broker")) as b:
        yield b


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def one(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = named(exporter, name)
    assert len(found) == 1, (name, [s.name for s in exporter.get_finished_spans()])
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def until(exporter: InMemorySpanExporter, *names: str, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not all(named(exporter, n) for n in names):
            await asyncio.sleep(0.02)


def services(url: str, provider: TracerProvider) -> tuple[tidings.Service, tidings.Service]:
    options = dict(url=url, tracing="otel", tracer_provider=provider, register=False)
    return tidings.Service("orders", **options), tidings.Service("billing", **options)


async def test_request_reply_is_one_trace_across_two_services(broker, spans):
    provider, exporter = spans
    topic = f"otel.quote.{secrets.token_hex(3)}"
    orders, billing = services(broker.url, provider)
    seen: list[tidings.Context] = []

    @billing.reply(topic)
    async def quote(query: dict, ctx: tidings.Context) -> dict:
        seen.append(ctx)
        return {"cents": 1200}

    tracer = provider.get_tracer("test")
    async with billing.running(), orders.running():
        with tracer.start_as_current_span("checkout") as root:
            assert await orders.request(topic, {"sku": "a"}, timeout=15) == {"cents": 1200}
        await until(exporter, f"ack {topic}")

    send, process = one(exporter, f"send {topic}"), one(exporter, f"process {topic}")
    reply, ack = one(exporter, "send (temporary)"), one(exporter, f"ack {topic}")
    trace_id = root.get_span_context().trace_id
    assert {s.context.trace_id for s in (send, process, reply, ack)} == {trace_id}
    assert parent_of(send) == root.get_span_context().span_id
    assert parent_of(process) == send.context.span_id  # across the broker, by traceparent
    assert parent_of(reply) == process.context.span_id
    assert parent_of(ack) == process.context.span_id
    assert (send.kind, process.kind, reply.kind, ack.kind) == (
        SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.PRODUCER, SpanKind.CLIENT,
    )  # fmt: skip

    conversation = seen[0].correlation_id
    assert conversation
    assert process.attributes["messaging.system"] == "tidings"
    assert process.attributes["messaging.destination.name"] == topic
    assert process.attributes["messaging.consumer.group.name"] == "billing"
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.message.conversation_id"] == conversation
    assert send.attributes["messaging.message.conversation_id"] == conversation
    assert reply.attributes["messaging.message.conversation_id"] == conversation
    assert reply.attributes["messaging.destination.temporary"] is True
    assert ack.attributes["messaging.operation.type"] == "settle"
    assert ack.attributes["messaging.operation.name"] == "ack"
    # the handler's Context carries the process span's ids for code that reads ctx.trace
    assert seen[0].trace.trace_id == f"{trace_id:032x}"
    assert seen[0].trace.span_id == f"{process.context.span_id:016x}"


async def test_an_event_chain_is_one_trace_and_settlements_are_spans(broker, spans):
    provider, exporter = spans
    placed, invoiced = (f"otel.{n}.{secrets.token_hex(3)}" for n in ("placed", "invoiced"))
    orders, billing = services(broker.url, provider)
    attempts: list[int] = []

    @billing.on(placed, backoff=tidings.Backoff(initial=0.05, jitter=0))
    async def bill(order: dict, ctx: tidings.Context) -> None:
        attempts.append(ctx.delivery_count)
        if ctx.delivery_count == 1:
            raise RuntimeError("ledger busy")  # nacked, then handled again
        await ctx.publish(invoiced, {"order": order["id"]})

    @orders.on(invoiced)
    async def done(invoice: dict) -> None:
        raise tidings.Reject("nothing to do with it")

    async with billing.running(), orders.running():
        receipt = await orders.publish(placed, {"id": "o-1"}, key="o-1")
        await until(exporter, f"reject {invoiced}", f"ack {placed}")

    send = one(exporter, f"send {placed}")
    failed, handled = sorted(named(exporter, f"process {placed}"), key=lambda s: s.start_time)
    nack, ack = one(exporter, f"nack {placed}"), one(exporter, f"ack {placed}")
    send2, process2 = one(exporter, f"send {invoiced}"), one(exporter, f"process {invoiced}")
    reject = one(exporter, f"reject {invoiced}")
    chain = (send, failed, handled, nack, ack, send2, process2, reject)
    assert len({s.context.trace_id for s in chain}) == 1
    assert send.parent is None  # a publish outside any trace starts one
    assert parent_of(failed) == parent_of(handled) == send.context.span_id
    assert parent_of(nack) == failed.context.span_id
    assert parent_of(ack) == handled.context.span_id
    assert parent_of(send2) == handled.context.span_id
    assert parent_of(process2) == send2.context.span_id
    assert parent_of(reject) == process2.context.span_id
    assert [s.kind for s in (send, failed, nack, send2, process2, reject)] == [
        SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.CLIENT,
        SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.CLIENT,
    ]  # fmt: skip

    assert failed.status.status_code.name == "ERROR"
    assert failed.attributes["error.type"] == "RuntimeError"
    assert handled.status.status_code.name == "UNSET"
    assert process2.status.status_code.name == "UNSET"  # a Reject is asked for, not a failure
    assert process2.attributes["tidings.outcome"] == "reject"
    assert [failed.attributes["tidings.message.delivery_count"], attempts] == [1, [1, 2]]
    msg_id = send.attributes["messaging.message.id"]
    assert msg_id and handled.attributes["messaging.message.id"] == msg_id
    assert handled.attributes["messaging.destination.partition.id"] == str(receipt.partition)
    assert send.attributes["messaging.destination.partition.id"] == str(receipt.partition)
    assert send.attributes["messaging.message.key"] == "o-1"
    assert process2.attributes["messaging.consumer.group.name"] == "orders"
    assert nack.attributes["messaging.operation.name"] == "nack"
    assert reject.attributes["messaging.operation.name"] == "reject"


async def test_publish_many_makes_create_spans_and_a_batch_span_links_them(broker, spans):
    provider, exporter = spans
    topic = f"otel.batch.{secrets.token_hex(3)}"
    orders = tidings.Service(
        "orders", url=broker.url, register=False, middleware=[OpenTelemetryMiddleware(provider)],
        default_middleware=False,
    )  # fmt: skip
    async with orders.running(), tidings.connect(broker.url) as client:
        await orders.publish_many(topic, [{"n": 1}, {"n": 2}])
        await orders.publish(topic, {"n": 3})
        sub = await client.subscribe(topic, "bulk")
        batch: list[tidings.Message] = []
        async with asyncio.timeout(30):
            while len(batch) < 3:
                batch += await sub.next_batch(10, timeout=1)
        with batch_span(batch, "bulk", tracer_provider=provider) as span:
            await sub.ack_many(batch)
        await sub.close()

    creates = named(exporter, f"create {topic}")
    (send,) = named(exporter, f"send {topic}")
    assert len(creates) == 2
    assert all(s.attributes["messaging.batch.message_count"] == 2 for s in creates)
    assert all(s.kind is SpanKind.PRODUCER for s in creates)
    (processed,) = named(exporter, f"process {topic}")
    assert processed.context.span_id == span.get_span_context().span_id
    assert processed.kind is SpanKind.CONSUMER and processed.parent is None
    assert processed.attributes["messaging.batch.message_count"] == 3
    assert processed.attributes["messaging.consumer.group.name"] == "bulk"
    linked = {link.context.span_id for link in processed.links}
    assert linked == {s.context.span_id for s in [*creates, send]}
    assert {m.headers[H.TRACEPARENT].split("-")[2] for m in batch} == {
        f"{s.context.span_id:016x}" for s in [*creates, send]
    }


def test_a_service_without_it_does_not_import_opentelemetry():
    code = (
        "import sys, tidings\n"
        "svc = tidings.Service('x', url='memory://', register=False)\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'\n"
        "assert type(svc.middleware[0]).__name__ == 'TracingMiddleware'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_unknown_tracing_mode_is_refused():
    with pytest.raises(BadRequest, match="tracing='zipkin'"):
        tidings.Service("x", url="memory://", tracing="zipkin", register=False)


def test_the_docs_sample_runs_and_prints_its_spans(tmp_path):
    """docs/service.md's OpenTelemetry block, run as a user would copy it."""
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "service.md").read_text()
    section = page.split("### OpenTelemetry", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "otel_sample.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    reply, names = done.stdout.strip().splitlines()
    assert reply == "{'cents': 2400}"
    assert names == str(
        ["ack invoice.quote", "process invoice.quote", "send (temporary)", "send invoice.quote"]
    )
