"""The explorer in a real headless browser (Debian's chromium, driven by Playwright) against a live devnode with a
subnet: every page loads without console errors, the metagraph chart has data points, a new block appears without
a reload, and search finds a transaction. Screenshots go to artifacts/screenshots/ (kept by CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gridmint.client.wallet import open_wallet
from tests.live_network import LiveSubnet, free_port_range, live_subnet

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

SCREENSHOTS = Path(__file__).parents[2] / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGES = ["", "#/subnets", "#/subnet/1", "#/market", "#/authorities", "#/block/2", "#/account/{val}"]


@pytest.fixture
def explorer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, LiveSubnet]]:
    assert Path(CHROMIUM).exists(), "chromium is not installed: `make test` installs Debian's chromium"
    with live_subnet(tmp_path, monkeypatch, tempo=5) as live:
        port = free_port_range(1)
        process = subprocess.Popen([sys.executable, "-m", "gridmint.cli.main", "explorer", "--port", str(port),
                                    "--node", live.node.url], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                   env=os.environ.copy())
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "api/status", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline and process.poll() is None, "the explorer did not start"
                time.sleep(0.1)
            yield url, live
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_pages_chart_live_blocks_and_search_in_a_browser(explorer: tuple[str, LiveSubnet]) -> None:
    from playwright.sync_api import sync_playwright

    url, live = explorer
    sent = live.run("wallet", "transfer", "owner", open_wallet("val", live.wallets).address, "2")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        for route in PAGES:
            route = route.format(val=open_wallet("val", live.wallets).hotkey_address("default"))
            page.goto(url + route)
            page.wait_for_load_state("networkidle")
            assert "Loading" not in page.inner_text("main") and page.locator("main .fail").count() == 0, route
            name = route.replace("#/", "-").replace("/", "-")[:40]
            page.screenshot(path=str(SCREENSHOTS / f"explorer{name}.png"), full_page=True)

        page.goto(url + "#/subnet/1")
        page.wait_for_selector("#incentive-chart circle.point")
        assert page.locator("#incentive-chart circle.point").count() >= 2
        assert page.locator("#emission-chart circle.point").count() >= 2
        assert page.locator("#metagraph tbody tr").count() == 2

        page.goto(url)
        page.wait_for_selector("#blocks tbody tr")
        first = int(page.locator("#blocks tbody tr").first.inner_text().split()[0])
        page.wait_for_selector(f"#blocks tbody tr.new[data-height='{first + 1}']", timeout=15_000)  # no reload

        page.fill("#q", sent["hash"])
        page.click("#search button")
        page.wait_for_url(f"**#/tx/{sent['hash']}")
        page.wait_for_selector("text=bank/send")
        assert "succeeded" in page.inner_text("main")
        page.screenshot(path=str(SCREENSHOTS / "explorer-search-tx.png"), full_page=True)
        browser.close()
    assert errors == []
