"""A prediction subnet end to end: forecasts committed before their future exists, scored when it has happened.

A real devnode (blocks of 0.05 s) with a prediction subnet whose tempo is short, four miner processes — a
calibrated one (`gridmint miner run --backend statsmodels`, ARIMA by AIC, answering any registered hotkey), the
naive random walk (`--backend naive`), an over-confident one (statsmodels' paths squeezed to a fifth of their
spread) and a copier that forwards each request to the calibrated miner and sends its answer on — and a real
``PredictionValidator`` in this process. Each epoch it asks every miner for 100 paths of four hidden-regime series
whose futures start 100 blocks later, commits the Merkle root of the signed answers on chain before those blocks
exist, and scores the answers once they do; weights go through commit-reveal and Yuma.

Once the horizons of several prompts have resolved: the calibrated forecaster has the highest incentive on chain,
the copier earns less than the miner it copies (its answers arrive second and score as misses), and every scored
answer is covered by a root the chain holds for that validator and epoch, checked by its Merkle proof and the
miner's own signature over the answer.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gridmint.chain.crypto import format_address
from gridmint.client.chain_client import ChainClient
from gridmint.client.metagraph import Metagraph
from gridmint.client.signing import verify_answer
from gridmint.client.wallet import open_wallet
from gridmint.inference.client import MinerClient
from gridmint.inference.validator.answer_root import answer_headers, verify_proof
from gridmint.inference.validator.forecast_scoring import Leaderboard
from gridmint.inference.validator.prediction import PredictionSettings, PredictionValidator
from tests.support import gateway_network as network
from tests.support.live_subnet import live_subnet
from tests.support.processes import start_server
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TEMPO = 240  # blocks of 0.05 s: an epoch, and a prompt, every ~12 s
# 200 blocks (~10 s) for the miners to answer and the root to land: a statsmodels fit of four series under a
# 2-core machine's load, and the copier's second hop, have taken most of 5 s.
SETTINGS = PredictionSettings(horizon=12, paths=100, series_per_prompt=4, history=64, lead_blocks=200)
PROMPTS = 6  # scored prompts before the incentive is read
MINERS = ("smart", "naive", "overconf", "copier")


def test_the_calibrated_forecaster_leads_the_copier_trails_and_every_scored_answer_is_committed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("owner", "val", *MINERS)
    with live_subnet(tmp_path, monkeypatch, names=names, tempo=TEMPO, modality="prediction") as live:
        hotkeys = {name: open_wallet(name, live.wallets).hotkey_address("default") for name in MINERS}
        ports = {name: network.miner_port(tmp_path, name) for name in MINERS}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        processes = [
            network.start_miner(tmp_path, "smart", 1, "statsmodels", "0", "--allow", "registered"),
            network.start_miner(tmp_path, "naive", 1, "naive", "0"),
            start_server("overconf", ["--kind", "overconfident", "--wallet", "overconf", "--netuid", "1", "--port",
                                      str(ports["overconf"])], tmp_path, ports["overconf"],
                         module="tests.e2e.prediction_miners"),
            start_server("copier", ["--kind", "copier", "--wallet", "copier", "--netuid", "1", "--port",
                                    str(ports["copier"]), "--victim", urls["smart"], hotkeys["smart"],
                                    "statsmodels-arima"], tmp_path, ports["copier"],
                         module="tests.e2e.prediction_miners"),
        ]
        key = open_wallet("val", live.wallets).hotkey("default")
        validator = PredictionValidator(key, 1, live.node.url, SETTINGS, Leaderboard(10_000, 100_000),
                                        timeout_s=6.0, allow=[f"127.0.0.1:{port}" for port in ports.values()])
        try:
            with ChainClient(live.node.url) as client:
                wait_for(lambda: sum(e is not None for e in Metagraph.fetch(client, 1).endpoints) >= len(MINERS),
                         "the miners to announce their endpoints", timeout_s=60, interval_s=0.2)

                def standing() -> dict[str, float]:
                    graph = Metagraph.fetch(client, 1)
                    incentive = graph.fraction("incentive")
                    return {name: float(incentive[graph.uid_of(hotkeys[name])]) for name in MINERS}

                async def run() -> dict[str, float]:
                    async with MinerClient(key, timeout_s=6.0, allow=validator.allow) as miners:
                        deadline = time.monotonic() + 480
                        scored_prompts = 0
                        while time.monotonic() < deadline:
                            before = len(validator.leaderboard.entries)
                            await validator.round(miners)
                            scored_prompts += len(validator.leaderboard.entries) - before
                            await asyncio.to_thread(validator.submit_weights)
                            now = standing()
                            if scored_prompts >= PROMPTS and now["smart"] > 0 and \
                                    now["smart"] == max(now.values()) and now["copier"] < now["smart"]:
                                return now
                            await asyncio.sleep(0.3)
                    raise AssertionError(f"no clear standing after {scored_prompts} prompts: {standing()}; "
                                         f"leaderboard {validator.leaderboard.scores(client.height())}")

                final = asyncio.run(run())
                board = validator.leaderboard.scores(client.height())
                assert final["copier"] < final["smart"] and final["smart"] == max(final.values()), final
                assert board[hotkeys["smart"]] == max(board.values()), board
                assert board[hotkeys["copier"]] < board[hotkeys["smart"]], board

                # Every scored answer is in a root the chain holds for this validator and the prompt's epoch.
                assert len(validator.records) >= PROMPTS * 3, len(validator.records)
                checked_roots: dict[int, bytes] = {}
                for record in validator.records:
                    if record.epoch not in checked_roots:
                        on_chain = client.query(f"/commitments/epoch/1/{validator.address}/{record.epoch}")
                        checked_roots[record.epoch] = on_chain["hash"]
                    assert checked_roots[record.epoch] == record.root
                    assert record.answer.leaf() == record.leaf
                    assert verify_proof(record.leaf, record.proof, record.root)
                    verify_answer(answer_headers(record.answer), record.body, record.hotkey, record.answer.nonce,
                                  format_address(key.address))
                scored_miners = {record.hotkey for record in validator.records}
                assert scored_miners == set(hotkeys.values())
        finally:
            validator.close()
            for process in processes:
                process.stop()
