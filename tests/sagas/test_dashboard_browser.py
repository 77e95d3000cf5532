"""The saga dashboard (``tidings sagas serve``, a real process) in a real headless Chromium
(Playwright driving Debian's ``chromium``, as tests/management does for the broker's pages):
the list by status, one saga's steps and history, and the operator buttons going through the
orchestrator (compensate a stuck saga, a refused retry says why), plus the JSON API. The
orchestrator and participants run on a real broker and SQLite. Screenshots go to tmp."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright
from tests.helpers.nats_server import free_port

from .shop import OrderState, running_shop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(180)


def serve(db: str, logs: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = (logs / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "sagas", "serve", "--db", db, "--port", str(port)],
        stdout=out, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/api/sagas", timeout=5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((logs / "serve.log").read_text())
        time.sleep(0.1)


async def test_list_show_and_operator_buttons(tmp_path, broker):
    assert CHROMIUM, "Debian's chromium is missing: scripts/test installs it (apt-get)"
    orders, shop_db = f"sqlite:///{tmp_path / 'orders.db'}", f"sqlite:///{tmp_path / 'shop.db'}"
    async with running_shop(f"d{secrets.token_hex(3)}", orders, shop_db, broker.url) as shop:
        o = shop.orchestrator
        await o.start(shop.saga, OrderState(order="o-1"), id="ok-1")
        await o.start(shop.saga, OrderState(order="o-2", fail="reserve"), id="bad-1")
        await o.start(shop.saga, OrderState(order="o-3", hang="book"), id="stuck-1")  # 30 s
        assert (await o.wait("ok-1", 30)).status == "completed"
        assert (await o.wait("bad-1", 30)).status == "compensated"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while (await o.get("stuck-1")).step != 2:  # type: ignore[union-attr]
            assert loop.time() < deadline, "stuck-1 never reached book"
            await asyncio.sleep(0.05)
        proc, base = await asyncio.to_thread(serve, orders, tmp_path)
        try:
            async with httpx.AsyncClient(base_url=base) as http:
                listed = (await http.get("/api/sagas")).json()
                assert listed["counts"] == {"completed": 1, "compensated": 1, "running": 1}
                assert (await http.get("/api/sagas/nope")).status_code == 404
                refused = await http.post("/api/sagas/ok-1/abort", json={})
                assert refused.status_code == 409 and "is completed" in refused.json()["message"]

            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.goto(base + "/")
                assert await page.locator("#count-running b").inner_text() == "1"
                assert await page.locator("#count-compensated b").inner_text() == "1"
                await page.click("#count-compensated")
                rows = page.locator("#sagas tbody tr")
                await page.wait_for_url("**/?status=compensated")
                assert await rows.count() == 1
                assert "reserve" in await rows.first.inner_text()  # its failed step
                await page.screenshot(path=str(tmp_path / "list.png"), full_page=True)

                # a completed saga: its steps and history; retry is refused with the reason
                await page.goto(base + "/sagas/ok-1")
                assert await page.locator("#status").inner_text() == "completed"
                steps = await page.locator("#steps tbody tr").all_inner_texts()
                assert [s.split("\t")[1:3] for s in steps] == [
                    ["charge", "done"], ["reserve", "done"], ["book", "done"],
                ]  # fmt: skip
                history = await page.locator("#history").inner_text()
                assert "started" in history and "step-done" in history and "completed" in history
                await page.click("button:has-text('retry')")
                await page.get_by_text("cannot retry it").wait_for(timeout=30_000)

                # the stuck saga: compensate it from the page, with a reason
                await page.goto(base + "/")
                await page.click("text=stuck-1")
                await page.wait_for_url("**/sagas/stuck-1")
                assert await page.locator("#status").inner_text() == "running"
                assert "book" in await page.locator("#current").inner_text()
                await page.fill("#reason", "customer cancelled")
                await page.click("button:has-text('compensate')")
                await page.get_by_text("compensate requested (op-").wait_for(timeout=30_000)
                # the orchestrator does it; the live refresh shows it without a reload
                await page.wait_for_function(
                    "document.getElementById('status').textContent === 'compensated'",
                    timeout=60_000,
                )
                history = await page.locator("#history").inner_text()
                assert "operator-compensate" in history
                assert "by dashboard: customer cancelled" in history
                await page.screenshot(path=str(tmp_path / "compensated.png"), full_page=True)
                await browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
    record = await o.get("stuck-1")
    assert record is not None and record.status == "compensated"
    # book's command never took effect (its handler kept failing); charge and reserve undone
    assert sorted(shop.effects("stuck-1")) == sorted(
        [("charge", "do"), ("reserve", "do"), ("charge", "undo"), ("reserve", "undo")]
    )
    assert all((tmp_path / n).stat().st_size > 0 for n in ("list.png", "compensated.png"))
