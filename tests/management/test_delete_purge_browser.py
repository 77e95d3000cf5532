"""The Topic page's delete and purge buttons in a real headless Chromium (as
test_dashboard_browser.py): delete one message with its row's button (the group then never
gets it), purge the topic with the page's button (the group's backlog drops to 0 and it gets
nothing). Screenshots go to the test's tmp dir."""

from __future__ import annotations

import shutil

from playwright.async_api import async_playwright

import tidings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def test_delete_a_message_and_purge_the_topic_from_its_page(open_broker, tmp_path):
    assert CHROMIUM, "Debian's chromium is missing: scripts/test installs it (apt-get)"
    topic, group = "browser.purge", "billing"
    async with tidings.connect(open_broker.url) as client:
        await client.create_topic(topic)
        await (await client.subscribe(topic, group)).close()
        receipts = [await client.publish(topic, f"order {i}".encode()) for i in range(3)]

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("dialog", lambda dialog: dialog.accept())  # the buttons' confirm()
            await page.goto(f"{open_broker.base}/topics/{topic}")
            row = page.locator("#messages tr", has_text="order 1")
            await row.locator("button:has-text('delete')").click()
            result = page.locator("#dl-result")
            await result.get_by_text(f"deleted {receipts[1].id}").wait_for(timeout=30_000)
            assert "billing" in await result.inner_text()
            await page.screenshot(path=str(tmp_path / "deleted.png"), full_page=True)

            sub = await client.subscribe(topic, group)
            got = []
            for _ in range(2):
                msg = await sub.next(timeout=10)
                assert msg is not None
                got.append(msg.body)
                # left un-acked: the purge takes leased messages too
            assert got == [b"order 0", b"order 2"]
            assert await sub.next(timeout=0.5) is None

            await page.goto(f"{open_broker.base}/topics/{topic}")
            await page.click("button:has-text('Purge topic')")
            await result.get_by_text("purged 3 message(s)").wait_for(timeout=30_000)
            await page.wait_for_function(  # after the page's reload: nothing left to browse
                "() => document.querySelectorAll('#messages tbody tr').length === 0",
                timeout=30_000,
            )
            backlog = page.locator("#topic-stats tr", has_text=group).locator("td").nth(4)
            assert await backlog.inner_text() == "0"
            await page.screenshot(path=str(tmp_path / "purged.png"), full_page=True)
            await browser.close()

        assert await sub.next(timeout=0.5) is None
        await sub.close()
    assert all((tmp_path / n).stat().st_size > 0 for n in ("deleted.png", "purged.png"))
