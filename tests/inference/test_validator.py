"""The validator's judgement: unsigned answers and false model claims score 0; averages reset when a UID
changes hands; weights scale to the best UID."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import pytest

from gridmint.client.metagraph import Metagraph
from gridmint.inference.client import Answer
from gridmint.inference.validator.loop import Validator
from gridmint.inference.validator.scoring import Challenge, EmbeddingScorer, TextScorer
from tests.helpers import key


@dataclass
class StubClient:
    """Stands in for MinerClient inside these unit tests: returns a fixed answer."""

    answer: Answer

    async def call(self, *args: Any, **kwargs: Any) -> Answer:
        return self.answer


class ConstantScorer:
    modality = "text-generation"
    model = "m"

    def draw(self, rng: random.Random) -> Challenge:
        return Challenge("/v1/chat/completions", {}, None)

    def score(self, challenge: Challenge, answer: Any) -> float:
        return 1.0


def make_validator() -> Validator:
    return Validator(key("validator"), 1, "http://127.0.0.1:9", ConstantScorer(), timeout_s=1, seed=0)


def test_an_answer_that_is_not_signed_by_the_miner_scores_zero() -> None:
    validator = make_validator()
    unsigned = StubClient(Answer(200, b'{"ok": true}', 0.01, signed=False))
    score, note = asyncio.run(validator._ask(unsigned, "http://m", "gm1miner", ConstantScorer().draw(validator.rng)))  # type: ignore[arg-type]
    assert score == 0.0 and "not signed" in note
    signed = StubClient(Answer(200, b'{"ok": true}', 0.0, signed=True))
    score, _ = asyncio.run(validator._ask(signed, "http://m", "gm1miner", ConstantScorer().draw(validator.rng)))  # type: ignore[arg-type]
    assert score == 1.0
    validator.close()


def test_averages_reset_when_a_uid_changes_hands_and_weights_scale_to_the_best() -> None:
    validator = make_validator()
    validator.state.scores = {1: 0.8, 2: 0.4, 3: 0.0}
    validator.state.hotkeys = {1: "gm1a", 2: "gm1b", 3: "gm1c"}
    assert validator.weights() == ([1, 2], [65_535, 32_768])
    graph = Metagraph(netuid=1, n=4, hotkey_bytes=b"")
    graph._decoded["hotkeys"] = ["gm1v", "gm1a", "gm1NEW", "gm1c"]
    validator._forget_replaced(graph)
    assert validator.state.scores == {1: 0.8, 3: 0.0}
    validator.close()


@pytest.mark.slow
def test_the_text_scorer_separates_the_claimed_model_from_impostors() -> None:
    from gridmint.inference.backends.base import Generation
    from gridmint.inference.backends.llama_cpp import LlamaCppBackend

    scorer = TextScorer()
    challenge = scorer.draw(random.Random(3))
    real = asyncio.run(LlamaCppBackend().generate(Generation(model=scorer.model, messages=challenge.context,
                                                             max_tokens=24)))
    answer = {"model": scorer.model, "choices": [{"message": {"content": real.text}}]}
    assert scorer.score(challenge, answer) > 0.2
    garbage = {"model": scorer.model, "choices": [{"message": {"content": "zq blorp 7x ## lorem qua zq zq"}}]}
    assert scorer.score(challenge, garbage) == 0.0  # claims SmolLM2, but no SmolLM2 would say that
    renamed = {**answer, "model": "gpt-4o"}
    assert scorer.score(challenge, renamed) == 0.0  # answered under another model's name
    assert scorer.score(challenge, {"model": scorer.model}) == 0.0


@pytest.mark.slow
def test_the_embedding_scorer_catches_noise_and_inconsistent_repeats() -> None:
    import numpy as np

    scorer = EmbeddingScorer()
    challenge = scorer.draw(random.Random(5))
    reference = challenge.context

    def answer(vectors: Any) -> dict[str, Any]:
        return {"model": scorer.model, "data": [{"embedding": list(map(float, v))} for v in vectors]}

    assert scorer.score(challenge, answer(reference)) > 0.99
    noise = np.random.default_rng(1).normal(size=reference.shape)
    assert scorer.score(challenge, answer(noise)) < 0.2
    inconsistent = reference.copy()
    inconsistent[-1] = -inconsistent[-1]
    assert scorer.score(challenge, answer(inconsistent)) == 0.0
    assert scorer.score(challenge, answer(reference[:, :10])) == 0.0
