"""The dashboard in a real headless Chromium (Playwright for Python driving Debian's
``chromium`` by its executable path; ``scripts/test`` installs it when missing): a topic page
shows the depth of its group and follows new messages live, and a rejected message shows up,
body and reason, on its dead-letter topic's page. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import asyncio
import shutil

from playwright.async_api import async_playwright

import tidings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def test_topic_page_shows_depth_live_and_a_dead_letter(open_broker, tmp_path):
    assert CHROMIUM, "Debian's chromium is missing: scripts/test installs it (apt-get)"
    topic, group = "browser.orders", "billing"
    async with tidings.connect(open_broker.url) as client:
        await client.create_topic(topic)
        sub = await client.subscribe(topic, group=group, prefetch=1)
        await sub.close()
        for i in range(7):
            await client.publish(topic, f"order {i}".encode())

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"{open_broker.base}/topics/{topic}")
            row = page.locator("#topic-stats tr", has_text=group)
            backlog = row.locator("td").nth(4)
            assert await backlog.inner_text() == "7"
            await page.screenshot(path=str(tmp_path / "topic-7.png"), full_page=True)

            for i in range(7, 10):
                await client.publish(topic, f"order {i}".encode())
            # the page's script refreshes the live parts in place (no reload)
            await page.wait_for_function(
                "() => [...document.querySelectorAll('#topic-stats tr')]"
                ".some(r => r.cells[0] && r.cells[0].innerText === 'billing'"
                " && r.cells[4].innerText === '10')",
                timeout=30_000,
            )
            assert "updated" in await page.locator("#refreshed").inner_text()
            await page.screenshot(path=str(tmp_path / "topic-10-live.png"), full_page=True)

            sub = await client.subscribe(topic, group=group, prefetch=1)
            async for msg in sub:
                await msg.reject("no such customer")
                break
            await sub.close()
            dlq = f"{topic}.{group}.dlq"
            for _ in range(100):  # the dead-letter topic appears once the move is done
                if dlq in [t.name for t in await client.list_topics()]:
                    break
                await asyncio.sleep(0.1)
            await page.goto(f"{open_broker.base}/topics/{topic}")
            await page.click(f"text={dlq}")
            assert page.url.endswith(f"/topics/{dlq}")
            body = page.locator("#messages")
            await body.get_by_text("order 0").wait_for(timeout=30_000)
            assert "no such customer" in await body.inner_text()
            assert "rejected" in await body.inner_text()
            await page.screenshot(path=str(tmp_path / "dead-letter.png"), full_page=True)

            await page.goto(f"{open_broker.base}/")
            assert await page.locator("#overview .card").count() >= 6
            await page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
            await browser.close()
    assert all((tmp_path / n).stat().st_size > 0 for n in ("topic-7.png", "dead-letter.png"))
