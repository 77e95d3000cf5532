"""The Overview page follows the broker by Server-Sent Events in a real headless Chromium (as
test_dashboard_browser.py): messages published after the page loaded show up in its cards
without a reload and without re-fetching the page (no polling); a page whose stream is
refused falls back to polling. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import shutil

from playwright.async_api import async_playwright

import tidings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _count(text: str) -> int:
    return int(text.replace(",", ""))


async def test_the_overview_updates_live_by_events(open_broker, tmp_path):
    assert CHROMIUM, "Debian's chromium is missing: scripts/test installs it (apt-get)"
    topic = "browser.events"
    async with tidings.connect(open_broker.url) as client:
        await client.create_topic(topic)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            fetched: list[str] = []
            page.on("request", lambda request: fetched.append(request.url))
            await page.goto(f"{open_broker.base}/")
            cell = page.locator("#overview [data-key='messages']")
            before = _count(await cell.inner_text())
            await page.locator("#refreshed").get_by_text("live").wait_for(timeout=30_000)
            for i in range(5):
                await client.publish(topic, f"m{i}".encode())
            await page.wait_for_function(
                f"() => Number(document.querySelector(\"#overview [data-key='messages']\")"
                f".textContent.replace(/,/g, '')) >= {before + 5}",
                timeout=30_000,
            )
            await page.screenshot(path=str(tmp_path / "overview-live.png"), full_page=True)
            pages = [u for u in fetched if u.rstrip("/") == open_broker.base]
            assert len(pages) == 1, fetched  # loaded once: the numbers came by the stream
            assert any(u.startswith(f"{open_broker.base}/api/v1/events") for u in fetched)

            # a page whose stream fails (cut here by the browser) polls instead
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.route("**/api/v1/events*", lambda route: route.abort())
            await page.goto(f"{open_broker.base}/")
            stamp = page.locator("#refreshed")
            await stamp.get_by_text("updated").wait_for(timeout=30_000)  # a poll's stamp
            before = _count(await page.locator("#overview [data-key='messages']").inner_text())
            await client.publish(topic, b"polled")
            await page.wait_for_function(
                f"() => Number(document.querySelector(\"#overview [data-key='messages']\")"
                f".textContent.replace(/,/g, '')) >= {before + 1}",
                timeout=30_000,
            )
            await browser.close()
    assert (tmp_path / "overview-live.png").stat().st_size > 0
