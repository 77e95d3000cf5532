"""The dashboard's message trace and Services pages in a real headless Chromium (Playwright
with Debian's ``chromium``, as test_dashboard_browser.py): the search box leads from a message
id to its timeline (one dot per event, the nack's error in the details), a service chain shows
its related message as a second lane, and the Services graph draws the registry's services
with the topics they publish and consume. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import asyncio
import secrets
import shutil

import pytest
from playwright.async_api import async_playwright

import tidings
from tidings.client.registry.subjects import HEARTBEAT_RETENTION, HEARTBEAT_TOPIC
from tidings.server.management import servicemap

from .conftest import start

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.timeout(150)


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    broker = start(tmp_path_factory.mktemp("browser-traced"), env={"TIDINGS_TRACE": ">"})
    yield broker
    broker.proc.stop()


def test_the_registry_names_match_the_clients():
    assert servicemap.REGISTRY_TOPIC == HEARTBEAT_TOPIC
    assert servicemap.WINDOW == HEARTBEAT_RETENTION


async def _browser(pw):
    assert CHROMIUM, "Debian's chromium is missing: scripts/test installs it (apt-get)"
    return await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])


async def test_the_trace_page_draws_a_message_path(traced, tmp_path):
    topic = f"browser.trace.{secrets.token_hex(3)}"
    async with tidings.connect(traced.url) as client:
        await client.create_topic(topic)
        sub = await client.subscribe(topic, group="billing", prefetch=1)
        receipt = await client.publish(topic, b"order 9", msg_id=f"order-9-{topic}")
        n = 0
        async for msg in sub:
            n += 1
            if n == 1:
                await msg.nack(error="ledger busy")
            else:
                await msg.ack()
                break
        await sub.close()

    async with async_playwright() as pw:
        browser = await _browser(pw)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"{traced.base}/trace")
        assert "Traced topics" in await page.locator("main").inner_text()
        await page.fill("header input[name=q]", f"order-9-{topic}")  # the producer id
        await page.press("header input[name=q]", "Enter")
        await page.wait_for_url(f"**/trace/order-9-{topic}")
        lane = page.locator(f".lane[data-message='{receipt.id}']")
        # the ack reaches the broker a moment after the loop: the live refresh shows it
        await page.wait_for_function(
            f"() => document.querySelectorAll(\".lane[data-message='{receipt.id}'] .ev\")"
            ".length === 5",
            timeout=30_000,
        )
        classes = await lane.locator(".ev").evaluate_all("els => els.map(e => e.classList[1])")
        assert classes == ["published", "delivered", "nacked", "redelivered", "acked"]
        lefts = await lane.locator(".ev").evaluate_all(
            "els => els.map(e => parseFloat(e.style.left))"
        )
        assert lefts == sorted(lefts) and lefts[0] == 0.0 and lefts[-1] > 50  # a time axis
        assert "ledger busy" in await lane.inner_text()
        await page.screenshot(path=str(tmp_path / "trace.png"), full_page=True)

        await page.goto(f"{traced.base}/trace?q=no-such-thing")
        assert "no trace of" in await page.locator("main").inner_text()
        await browser.close()
    assert (tmp_path / "trace.png").stat().st_size > 0


async def test_a_chain_in_the_timeline_and_the_services_graph(traced, tmp_path):
    tag = secrets.token_hex(3)
    placed, invoiced = f"browser.placed.{tag}", f"browser.invoiced.{tag}"
    orders = tidings.Service(f"orders-{tag}", url=traced.url, heartbeat=0.5)
    billing = tidings.Service(f"billing-{tag}", url=traced.url, heartbeat=0.5)
    done = asyncio.Event()

    @billing.on(placed)
    async def bill(order: dict, ctx: tidings.Context) -> None:
        await ctx.publish(invoiced, {"order": order["id"]})

    @orders.on(invoiced)
    async def filed(invoice: dict) -> None:
        done.set()

    async with billing.running(), orders.running(), async_playwright() as pw:
        receipt = await orders.publish(placed, {"id": "o-1"})
        await asyncio.wait_for(done.wait(), 30)
        browser = await _browser(pw)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"{traced.base}/trace/{receipt.id}")
        await page.wait_for_function(
            "() => document.querySelectorAll('.lane').length === 2", timeout=30_000
        )
        lanes = page.locator(".lane")
        assert placed in await lanes.nth(0).inner_text()
        assert invoiced in await lanes.nth(1).inner_text()
        assert "related" in await lanes.nth(1).inner_text()
        await page.screenshot(path=str(tmp_path / "chain.png"), full_page=True)

        await page.click("header a[href='/services']")
        graph = page.locator("#service-map")
        # heartbeats carry a service's outgoing flows once it has published: wait for both
        await page.wait_for_function(
            f"() => document.querySelectorAll(\"#service-map .svc[data-name='orders-{tag}']\")"
            ".length === 2 && document.querySelectorAll("
            f"\"#service-map .svc[data-name='billing-{tag}']\").length === 2",
            timeout=60_000,
        )
        for topic in (placed, invoiced):
            assert await graph.locator(f".topic[data-name='{topic}']").count() == 1
        edges = await graph.locator("path.event title").evaluate_all(
            "els => els.map(e => e.textContent)"
        )
        assert f"orders-{tag} event to {placed}" in " ".join(edges)
        assert f"billing-{tag} handles {placed} as billing-{tag}" in " ".join(edges)
        assert f"billing-{tag} event to {invoiced}" in " ".join(edges)
        assert f"orders-{tag} handles {invoiced}" in " ".join(edges)
        row = page.locator("#services tr", has_text=f"billing-{tag}")
        assert placed in await row.inner_text() and invoiced in await row.inner_text()
        await page.screenshot(path=str(tmp_path / "services.png"), full_page=True)
        await page.click(f"#service-map .topic[data-name='{placed}']")
        await page.wait_for_url(f"**/topics/{placed}")
        await browser.close()
    assert (tmp_path / "services.png").stat().st_size > 0


def _rate(text: str) -> float:
    """'12.5/s' or '1,204/s' -> messages/s."""
    return float(text.rsplit(" ", 1)[-1].removesuffix("/s").replace(",", ""))


async def test_the_services_graph_shows_live_rates_on_its_edges(traced, tmp_path):
    """Rates on each edge (publisher -> topic from the publisher's heartbeat; topic -> consumer
    from the broker's ack rate of the consumer's group), updated while the page stays open."""
    tag = secrets.token_hex(3)
    topic = f"browser.rated.{tag}"
    shop = tidings.Service(f"shop-{tag}", url=traced.url, heartbeat=0.5)
    ledger = tidings.Service(f"ledger-{tag}", url=traced.url, heartbeat=0.5)
    handled = 0

    @ledger.on(topic)
    async def book(order: dict) -> None:
        nonlocal handled
        handled += 1

    async with shop.running(), ledger.running(), async_playwright() as pw:
        await shop.publish(topic, {"n": 0})  # the flow shows in the next heartbeat
        browser = await _browser(pw)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"{traced.base}/services")
        out_edge = f"#service-map text.rate[data-edge='shop-{tag}>{topic}']"
        in_edge = f"#service-map text.rate[data-edge='{topic}>ledger-{tag}']"
        await page.wait_for_selector(in_edge, timeout=60_000)  # live: the services appear
        await page.wait_for_selector(out_edge, timeout=60_000)
        group = f"#service-map text.group[data-edge='{topic}>ledger-{tag}']"
        assert await page.locator(group).text_content() == f"ledger-{tag}"
        await page.evaluate("() => { window.stayed = true; }")  # gone if the page reloads

        async def steady() -> None:  # about 40 messages/s until the rates show
            n = 0
            while True:
                n += 1
                await shop.publish(topic, {"n": n})
                await asyncio.sleep(0.025)

        feeder = asyncio.create_task(steady())
        try:
            await page.wait_for_function(
                "([a, b]) => [a, b].every(s => { const el = document.querySelector(s); return "
                "el && parseFloat(el.textContent.split(' ').pop().replace(/,/g, '')) > 0; })",
                arg=[out_edge, in_edge],
                timeout=60_000,
            )
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        assert await page.evaluate("() => window.stayed === true")  # updated in place
        assert _rate(await page.locator(out_edge).text_content() or "") > 0
        assert _rate(await page.locator(in_edge).text_content() or "") > 0
        assert handled > 0
        await page.screenshot(path=str(tmp_path / "services-rates.png"), full_page=True)
        await browser.close()
