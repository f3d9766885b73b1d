"""Usage is on disk before the answer leaves: a gateway killed (SIGKILL, no shutdown) the moment its answer arrives
has the request in its ledger, and after a restart it settles it on chain like any other (real devnode, gateway and
miner processes, echo backend)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from gridmint.chain.credit import compute_fee
from gridmint.client.chain_client import ChainClient
from gridmint.client.wallet import open_wallet
from tests.support.gateway_network import ledger_rows, start_gateway, start_miner, wait_for_models, wait_until_settled
from tests.support.live_subnet import live_subnet

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gateway")]

CHAT = {"model": "echo", "messages": [{"role": "user", "content": "remember me"}], "max_tokens": 8}
KILLS = 3


def _metered_requests(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "gateway-data" / "gateway.db") as db:
        return {request for (request,) in db.execute("SELECT request FROM metered")}


def test_a_gateway_killed_as_its_answer_arrives_has_the_usage_and_settles_it_after_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with live_subnet(tmp_path, monkeypatch, names=("owner", "val", "m1"), tempo=50_000, permit=False,
                     others=("gw", "consumer")) as live:
        # Settlement every 10 minutes: nothing is settled while the gateway lives, only after the last restart.
        # The gateway registers first, so the miner's first look at the chain already lists it.
        gateway = start_gateway(tmp_path, "gw", "--settle-seconds", "600", miners=("m1",))
        miner = start_miner(tmp_path, "m1", 1, "echo", "0.001")
        try:
            wait_for_models(gateway, "echo")
            live.run("credit", "open", gateway.url, "5", "--wallet", "consumer")
            api_key = live.run("gateway", "key", "--gateway", gateway.url, "--wallet", "consumer")["api_key"]
            answered = []
            for _ in range(KILLS):
                answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=30,
                                    headers={"authorization": f"Bearer {api_key}"})
                gateway.kill()  # at once: no shutdown, no last settlement
                assert answer.status_code == 200, answer.text
                answered.append(answer.headers["x-gridmint-request"])
                assert answered[-1] in _metered_requests(tmp_path)
                gateway = start_gateway(tmp_path, "gw", "--settle-seconds", "600", miners=("m1",))
                wait_for_models(gateway, "echo")
            assert _metered_requests(tmp_path) == set(answered)
            gateway.stop()  # a polite stop settles what is owed
            gateway = start_gateway(tmp_path, "gw", "--settle-seconds", "0.5", miners=("m1",))
            wait_until_settled(tmp_path, KILLS, gateway)
            with ChainClient(live.node.url) as chain:
                consumer, gw = (open_wallet(name, live.wallets).address for name in ("consumer", "gw"))
                line = chain.query(f"/credit/line/{consumer}/{gw}")
                rows = ledger_rows(tmp_path)
                owed = sum(grains for _, _, grains, _, _ in rows)
                assert len({batch for _, _, _, batch, _ in rows}) == 1  # one batch, one (line, miner) entry
                assert owed > 0 and line["spent"] == owed + compute_fee(owed, line["fee_bps"])
        finally:
            for process in (miner, gateway):
                process.stop()
