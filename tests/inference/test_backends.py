"""The real model backends on CPU: SmolLM2-135M-Instruct through llama.cpp, and WordLlama embeddings, served by
the miner app. Models come from the PyPI packages that ship them; nothing is downloaded."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import orjson
import pytest

from gridmint.inference.backends.base import Generation
from gridmint.inference.backends.registry import load_backend
from tests.inference.test_miner_security import MINER, VALIDATOR, post, signed

pytestmark = pytest.mark.slow
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def llama():  # type: ignore[no-untyped-def]
    return load_backend("llama-cpp")


@pytest.fixture(scope="module")
def words():  # type: ignore[no-untyped-def]
    return load_backend("wordllama")


def test_smollm2_generates_and_streams(llama) -> None:  # type: ignore[no-untyped-def]
    question = Generation(model=llama.model, messages=[{"role": "user", "content": "Name a color."}], max_tokens=16)
    result = asyncio.run(llama.generate(question))
    assert result.text.strip() and 0 < result.completion_tokens <= 16 and result.prompt_tokens > 3

    async def collect() -> list:  # type: ignore[type-arg]
        return [piece async for piece in llama.stream(question)]

    pieces = asyncio.run(collect())
    assert "".join(p.text for p in pieces).strip()
    assert pieces[-1].prompt_tokens == result.prompt_tokens  # the same template is counted both ways
    assert pieces[-1].finish_reason in ("stop", "length") and pieces[-1].completion_tokens > 0


def test_a_llama_miner_answers_signed_chat(llama) -> None:  # type: ignore[no-untyped-def]
    from gridmint.chain.crypto import format_address
    from gridmint.client.signing import NONCE, verify_answer
    from gridmint.inference.miner.app import MinerApp
    from gridmint.inference.protocol import CallerPolicy

    app = MinerApp(MINER, llama, CallerPolicy(validators={format_address(VALIDATOR.address)}))
    body = orjson.dumps({"model": llama.model, "messages": [{"role": "user", "content": "Say hello."}],
                         "max_tokens": 12})
    headers = signed(body)
    response = post(app, body, headers)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
    verify_answer(dict(response.headers), response.content, format_address(MINER.address), int(headers[NONCE]),
                  format_address(VALIDATOR.address))
    wrong = orjson.dumps({"model": llama.model, "input": "text"})
    assert post(app, wrong, signed(wrong), path="/v1/embeddings").status_code == 400


def test_wordllama_embeddings_mean_something(words) -> None:  # type: ignore[no-untyped-def]
    result = asyncio.run(words.embed(words.model, ["the cat sat on the mat", "a kitten rested on the rug",
                                                   "quantum chromodynamics of quarks"]))
    vectors = np.array(result.vectors)
    assert vectors.shape == (3, 256) and result.prompt_tokens > 6
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.2
