"""A group's dead letters in the dashboard, in a real headless Chromium (as
test_dashboard_browser.py): dead-letter a message, browse it (body, reason, error) from the
topic page, redrive it with the page's button, and see the group consume it while the other
group does not get it again. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import asyncio
import shutil

from playwright.async_api import async_playwright

import tidings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def test_browse_and_redrive_a_dead_letter(open_broker, tmp_path):
    assert CHROMIUM, "Debian's chromium is missing: scripts/test installs it (apt-get)"
    topic, group = "browser.refunds", "billing"
    async with tidings.connect(open_broker.url) as client:
        await client.create_topic(topic)
        billing = await client.subscribe(topic, group, max_deliveries=1)
        audit = await client.subscribe(topic, "audit")
        receipt = await client.publish(topic, b"refund o-2", headers={"x-order": "o-2"})
        await (await billing.next(timeout=10)).reject("card declined")
        await (await audit.next(timeout=10)).ack()
        await billing.close()
        for _ in range(100):
            if await client.dead_letters(topic, group):
                break
            await asyncio.sleep(0.05)

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"{open_broker.base}/topics/{topic}")
            await page.click("text=dead letters")
            assert page.url.endswith(f"/topics/{topic}/groups/{group}/dead-letters")
            table = page.locator("#dead-letters")
            await table.get_by_text("refund o-2").wait_for(timeout=30_000)
            text = await table.inner_text()
            assert receipt.id in text and "card declined" in text and "x-order: o-2" in text
            await page.screenshot(path=str(tmp_path / "dead-letters.png"), full_page=True)

            await page.click("#dead-letters button:has-text('redrive')")
            await page.locator("#dl-empty").wait_for(timeout=30_000)  # after the reload
            await page.screenshot(path=str(tmp_path / "redriven.png"), full_page=True)
            await browser.close()

        billing = await client.subscribe(topic, group)
        again = await billing.next(timeout=10)
        assert again is not None and (again.id, again.body) == (receipt.id, b"refund o-2")
        await again.ack()
        assert await audit.next(timeout=1.0) is None  # redriven for billing only
        await billing.close()
        await audit.close()
    assert all((tmp_path / n).stat().st_size > 0 for n in ("dead-letters.png", "redriven.png"))
