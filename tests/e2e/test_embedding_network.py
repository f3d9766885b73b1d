"""End to end on a devnode: an embedding subnet with a real embedding model (WordLlama) and a miner that returns
random vectors under the same model name; `gridmint validator run` scores them. The real model ends with the
incentive, the random one near 0."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn

from gridmint.client.wallet import open_wallet
from gridmint.inference.backends.base import EMBEDDING, EmbeddingResult, Generation, GenerationResult, StreamPiece
from gridmint.inference.backends.wordllama import WORDLLAMA_CONFIG, WORDLLAMA_DIM
from gridmint.inference.miner.app import MinerApp
from gridmint.inference.protocol import CallerPolicy
from gridmint.ports import free_port
from tests.support.live_subnet import live_subnet
from tests.support.waiting import wait_healthy

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


def test_real_embeddings_outrank_random_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("owner", "val", "words", "noise")
    with live_subnet(tmp_path, monkeypatch, names=names, tempo=40, modality="embedding") as live:
        words_port, noise_port = free_port(), free_port()
        logs = [(tmp_path / f"{name}.log").open("w") for name in ("words", "validator")]
        words = subprocess.Popen(
            [sys.executable, "-m", "gridmint.cli.main", "miner", "run", "--netuid", "1", "--backend", "wordllama",
             "--wallet", "words", "--port", str(words_port), "--sync-seconds", "0.5"],
            stdout=logs[0], stderr=subprocess.STDOUT, env={**os.environ})
        noise_app = MinerApp(open_wallet("noise", live.wallets).hotkey("default"), NoiseBackend(),
                             CallerPolicy(allow="any"))
        noise_server = uvicorn.Server(uvicorn.Config(noise_app, host="127.0.0.1", port=noise_port,
                                                     log_level="warning", lifespan="off"))
        noise_thread = threading.Thread(target=noise_server.run, daemon=True)
        noise_thread.start()
        validator = None
        try:
            wait_healthy(f"http://127.0.0.1:{words_port}")
            wait_healthy(f"http://127.0.0.1:{noise_port}")
            live.run("endpoint", "announce", "1", f"http://127.0.0.1:{noise_port}", "--model", MODEL,
                     "--wallet", "noise")
            validator = subprocess.Popen(
                [sys.executable, "-m", "gridmint.cli.main", "validator", "run", "--netuid", "1", "--wallet", "val",
                 "--interval", "0.3", "--timeout", "5", "--allow-endpoint", f"127.0.0.1:{words_port}",
                 "--allow-endpoint", f"127.0.0.1:{noise_port}"],
                stdout=logs[1], stderr=subprocess.STDOUT, env={**os.environ})
            graph = live.wait_for(lambda g: g["uids"][1]["incentive"] > 0.9 * ONE, "the real model's incentive",
                                  timeout_s=90)
            assert graph["uids"][2]["incentive"] < 0.05 * ONE
        finally:
            for process in (words, validator):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=10)
            for log in logs:
                log.close()
            noise_server.should_exit = True
            noise_thread.join(timeout=10)
        validator_log = (tmp_path / "validator.log").read_text()
        assert "committed" in validator_log and "revealed" in validator_log and "quality" in validator_log
