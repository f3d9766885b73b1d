"""``gridmint miner run`` on a live devnode: it announces its endpoint, learns who may call from the metagraph,
and answers the validator with signed answers while refusing hotkeys without a permit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gridmint.client.wallet import open_wallet
from gridmint.inference.client import MinerClient
from tests.support import gateway_network as network
from tests.support.live_subnet import live_subnet

pytestmark = pytest.mark.slow



def test_miner_run_announces_and_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with live_subnet(tmp_path, monkeypatch) as live:
        miner = network.start_miner(tmp_path, "miner", 1, "echo", "0.001")
        try:
            url = miner.url
            graph = live.metagraph()
            announced = graph["uids"][1]["endpoint"]
            assert announced["url"] == url and announced["models"] == ["echo"]
            assert announced["price_per_1k"] == 1_000_000
            miner_address = graph["uids"][1]["hotkey"]
            payload = {"model": "echo", "messages": [{"role": "user", "content": "are you there"}]}

            async def call(wallet: str) -> tuple[int, bool]:
                key = open_wallet(wallet, live.wallets).hotkey("default")
                async with MinerClient(key, timeout_s=5, allow=[url.removeprefix("http://")]) as client:
                    answer = await client.call(url, "/v1/chat/completions", miner_address, payload)
                    return answer.status, answer.signed

            assert asyncio.run(call("val")) == (200, True)
            assert asyncio.run(call("owner")) == (403, False)  # no UID, no permit
        finally:
            miner.stop()
        assert "Announced http://127.0.0.1" in miner.log()
