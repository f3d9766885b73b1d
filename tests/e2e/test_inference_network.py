"""End to end on a devnode: a text-generation subnet with three miners — SmolLM2 through llama.cpp, one that
answers random tokens while claiming SmolLM2, and one that is down — and one validator scoring them with the
reference model. After the validator's weights have counted for 3 epochs, the chain's metagraph ranks SmolLM2
first and the other two near 0."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gridmint.client.wallet import open_wallet
from gridmint.inference.backends.base import (
    TEXT_GENERATION,
    EmbeddingResult,
    Generation,
    GenerationResult,
    StreamPiece,
)
from gridmint.inference.client import MinerClient
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from gridmint.inference.validator.loop import Validator
from gridmint.inference.validator.scoring import TextScorer
from tests.support import gateway_network as network
from tests.support.live_subnet import live_subnet
from tests.support.ports import unused_port

pytestmark = pytest.mark.slow
ONE = 1 << 30
SMOLLM2 = "smollm2-135m-instruct"


class GarbageBackend:
    """Claims SmolLM2 and answers random tokens: what a lazy or dishonest miner would do."""

    name = "garbage"
    modality = TEXT_GENERATION

    def __init__(self) -> None:
        self.rng = random.Random(7)

    def models(self) -> list[str]:
        return [SMOLLM2]

    async def generate(self, request: Generation) -> GenerationResult:
        words = " ".join(self.rng.choice(["zq", "blorp", "7x", "##", "lorem", "qua", "the"]) for _ in range(20))
        return GenerationResult(words, 10, 20)

    async def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        yield StreamPiece("zq", "stop", 10, 1)

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        raise NotImplementedError("garbage does not embed")  # never called: the miner checks the modality



def test_validator_ranks_a_real_model_above_garbage_and_dead_miners(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   serve: Callable[..., str]) -> None:
    names = ("owner", "val", "smol", "garbage", "dead")
    with live_subnet(tmp_path, monkeypatch, names=names, tempo=80) as live:
        smol = network.start_miner(tmp_path, "smol", 1, "llama-cpp", "0")
        try:
            garbage_url = serve(MinerApp(open_wallet("garbage", live.wallets).hotkey("default"), GarbageBackend(),
                                         CallerPolicy(allow="any")))
            dead_url = f"http://127.0.0.1:{unused_port()}"
            live.run("endpoint", "announce", "1", garbage_url, "--model", SMOLLM2, "--wallet", "garbage")
            live.run("endpoint", "announce", "1", dead_url, "--model", SMOLLM2,
                     "--wallet", "dead")  # announced, but nothing listens there
            uid = {name: live.metagraph()["uids"][i]["uid"] for i, name in enumerate(names[1:])}
            validator = Validator(open_wallet("val", live.wallets).hotkey("default"), 1, live.node.url,
                                  TextScorer(), timeout_s=5, seed=1)

            summaries: list[str] = []

            async def validate() -> None:
                allow = [url.removeprefix("http://") for url in (smol.url, garbage_url, dead_url)]  # exactly its miners
                async with MinerClient(validator.key, timeout_s=5, allow=allow) as client:
                    revealed_in = None
                    for _ in range(300):
                        await validator.round(client)
                        summary = await asyncio.to_thread(validator.submit_weights)
                        summaries.append(summary)
                        epoch = int(summary.split(":")[0].split()[-1]) if summary.startswith("epoch") else 0
                        if revealed_in is None and "revealed" in summary:
                            revealed_in = epoch
                        # Weights revealed in epoch r count in the epochs that end r, r+1 and r+2.
                        if revealed_in is not None and int(live.run("subnet", "show", "1")["epoch"]) >= revealed_in + 3:
                            return
                        await asyncio.sleep(0.2)
                    raise AssertionError("the subnet did not pass enough epochs")

            asyncio.run(validate())
            validator.close()
            graph = live.metagraph()
            incentive = {name: graph["uids"][uid[name]]["incentive"] / ONE for name in ("smol", "garbage", "dead")}
            assert incentive["smol"] > 0.9, (incentive, validator.state.scores, summaries, uid)
            assert incentive["garbage"] < 0.05 and incentive["dead"] < 0.05, incentive
            assert validator.state.scores[uid["smol"]] > 10 * max(validator.state.scores[uid["garbage"]], 1e-9)
        finally:
            smol.stop()
