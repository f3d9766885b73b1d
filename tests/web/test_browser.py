"""The explorer in a real headless browser (Debian's chromium, driven by Playwright) against a live devnode with a
subnet: every page loads without console errors, the metagraph chart has data points, a new block appears without
a reload, and search finds a transaction. Screenshots go to artifacts/screenshots/ (kept by CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridmint.client.wallet import open_wallet
from tests.support.live_subnet import LiveSubnet, live_subnet
from tests.support.ports import free_port_range
from tests.support.waiting import wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

SCREENSHOTS = Path(__file__).parents[2] / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Each page and the heading it shows once rendered.
PAGES = {"": "Latest blocks", "#/subnets": "Subnets", "#/subnet/1": "Subnet 1", "#/market": "Providers",
         "#/authorities": "Authorities", "#/block/2": "Block 2", "#/account/{val}": "Account"}


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
            wait_healthy(url.removesuffix("/"), process, timeout_s=30, path="/api/status")
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
        for template, heading in PAGES.items():
            route = template.format(val=open_wallet("val", live.wallets).hotkey_address("default"))
            page.goto(url + route)
            # Rendered once its heading shows (the blocks page keeps polling, so the network is never idle).
            page.wait_for_selector(f"main h2:text-is('{heading}')", timeout=60_000)
            assert page.locator("main .fail").count() == 0, route
            name = route.replace("#/", "-").replace("/", "-")[:40]
            page.screenshot(path=str(SCREENSHOTS / f"explorer{name}.png"), full_page=True)

        page.goto(url + "#/subnet/1")
        page.wait_for_selector("#incentive-chart circle.point", timeout=60_000)
        assert page.locator("#incentive-chart circle.point").count() >= 2
        assert page.locator("#emission-chart circle.point").count() >= 2
        assert page.locator("#metagraph tbody tr").count() == 2

        page.goto(url)
        page.wait_for_selector("#blocks tbody tr", timeout=60_000)
        first = int(page.locator("#blocks tbody tr").first.inner_text().split()[0])
        page.wait_for_selector(f"#blocks tbody tr.new[data-height='{first + 1}']", timeout=60_000)  # no reload

        page.fill("#q", sent["hash"])
        page.click("#search button")
        page.wait_for_url(f"**#/tx/{sent['hash']}", timeout=60_000)
        page.wait_for_selector("text=bank/send", timeout=60_000)
        assert "succeeded" in page.inner_text("main")
        page.screenshot(path=str(SCREENSHOTS / "explorer-search-tx.png"), full_page=True)
        browser.close()
    assert errors == []
