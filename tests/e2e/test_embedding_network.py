"""End to end on a devnode: an embedding subnet with a real embedding model (WordLlama) and a miner that returns
random vectors under the same model name; `gridmint validator run` scores them. The real model ends with the
incentive, the random one near 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from gridmint.client.wallet import open_wallet
from gridmint.inference.backends.base import EMBEDDING, EmbeddingResult, Generation, GenerationResult, StreamPiece
from gridmint.inference.backends.wordllama import WORDLLAMA_CONFIG, WORDLLAMA_DIM
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from tests.support import gateway_network as network
from tests.support.live_subnet import live_subnet

pytestmark = pytest.mark.slow
ONE = 1 << 30
MODEL = f"wordllama-{WORDLLAMA_CONFIG}-{WORDLLAMA_DIM}"


class NoiseBackend:
    name = "noise"
    modality = EMBEDDING

    def __init__(self) -> None:
        self.rng = np.random.default_rng(3)

    def models(self) -> list[str]:
        return [MODEL]

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        vectors = self.rng.normal(size=(len(inputs), WORDLLAMA_DIM))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return EmbeddingResult(vectors.tolist(), len(inputs))

    async def generate(self, request: Generation) -> GenerationResult:
        raise NotImplementedError("noise does not generate")  # never called: the miner checks the modality

    def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        raise NotImplementedError("noise does not generate")


def test_real_embeddings_outrank_random_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                serve: Callable[..., str]) -> None:
    names = ("owner", "val", "words", "noise")
    with live_subnet(tmp_path, monkeypatch, names=names, tempo=40, modality="embedding") as live:
        words = network.start_miner(tmp_path, "words", 1, "wordllama", "0")
        validator = None
        try:
            noise_url = serve(MinerApp(open_wallet("noise", live.wallets).hotkey("default"), NoiseBackend(),
                                       CallerPolicy(allow="any")))
            live.run("endpoint", "announce", "1", noise_url, "--model", MODEL, "--wallet", "noise")
            validator = network.start_validator(
                tmp_path, "--interval", "0.3", "--timeout", "5",
                *(arg for url in (words.url, noise_url) for arg in ("--allow-endpoint", url.removeprefix("http://"))))
            graph = live.wait_for(lambda g: g["uids"][1]["incentive"] > 0.9 * ONE, "the real model's incentive",
                                  timeout_s=90)
            assert graph["uids"][2]["incentive"] < 0.05 * ONE
        finally:
            for process in (words, validator):
                if process is not None:
                    process.stop()
        validator_log = (tmp_path / "validator.log").read_text()
        assert "committed" in validator_log and "revealed" in validator_log and "quality" in validator_log
