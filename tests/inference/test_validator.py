"""The validator's judgement: unsigned answers and false model claims score 0; averages reset when a UID
changes hands; weights scale to the best UID."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from gridmint.client.metagraph import Metagraph
from gridmint.inference.client import Answer, MinerClient
from gridmint.inference.validator.loop import Validator
from gridmint.inference.validator.scoring import Challenge, EmbeddingScorer, TextScorer
from tests.support.chain import key


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
    challenge = ConstantScorer().draw(validator.rng)
    score, note = asyncio.run(validator._ask(unsigned, None, "http://m", "gm1miner", challenge))  # type: ignore[arg-type]
    assert score == 0.0 and "not signed" in note
    signed = StubClient(Answer(200, b'{"ok": true}', 0.0, signed=True))
    score, _ = asyncio.run(validator._ask(signed, None, "http://m", "gm1miner", ConstantScorer().draw(validator.rng)))  # type: ignore[arg-type]
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


@dataclass
class RaisingClient:
    error: Exception

    async def call(self, *args: Any, **kwargs: Any) -> Answer:
        raise self.error


class NaNScorer(ConstantScorer):
    def score(self, challenge: Challenge, answer: Any) -> float:
        return float("nan")


class CrashingScorer(ConstantScorer):
    def score(self, challenge: Challenge, answer: Any) -> float:
        raise OverflowError("a miner's numbers broke the scorer")


@pytest.mark.parametrize("error", [ValueError("Port out of range 0-65535"), UnicodeEncodeError("latin-1", "\u043c",
                                   0, 1, "ordinal not in range"), KeyError("choices"), TypeError("not a dict")])
def test_any_error_one_miner_provokes_scores_it_zero_instead_of_ending_the_round(error: Exception) -> None:
    validator = make_validator()
    score, note = asyncio.run(validator._ask(RaisingClient(error), None, "http://m", "gm1miner",  # type: ignore[arg-type]
                                             ConstantScorer().draw(validator.rng)))
    assert score == 0.0 and type(error).__name__ in note
    validator.close()


@pytest.mark.parametrize("scorer", [NaNScorer(), CrashingScorer()])
def test_a_score_that_is_not_a_finite_number_is_zero(scorer: ConstantScorer) -> None:
    validator = make_validator()
    validator.scorer = scorer
    signed = StubClient(Answer(200, b'{"ok": true}', 0.0, signed=True))
    score, _ = asyncio.run(validator._ask(signed, None, "http://m", "gm1miner", scorer.draw(validator.rng)))  # type: ignore[arg-type]
    assert score == 0.0
    validator.close()


def test_bad_urls_and_refused_addresses_score_zero_through_the_real_client() -> None:
    validator = make_validator()

    async def ask_all() -> list[tuple[float, str]]:
        async with MinerClient(validator.key, timeout_s=1) as client:
            return [await validator._ask(client, None, url, "gm1miner", ConstantScorer().draw(validator.rng))
                    for url in ("http://a:99999", "http://\u043c\u0438\u0440.io", "http://127.0.0.1:9/?",
                                "http://u@a.io", "http://127.0.0.1:9", "http://10.0.0.1:8091")]

    results = asyncio.run(ask_all())
    assert [score for score, _ in results] == [0.0] * 6
    assert all("no answer" in note for _, note in results)
    assert "loopback" in results[4][1] and "private" in results[5][1]
    validator.close()


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_embeddings_with_nan_or_huge_numbers_score_a_finite_zero() -> None:
    scorer = EmbeddingScorer.__new__(EmbeddingScorer)  # the scoring arithmetic only: no reference model loaded
    scorer.model = "m"
    reference = np.ones((3, 4))
    for value in (1e200, 1e308, float("inf"), float("nan")):
        answer = {"model": "m", "data": [{"embedding": [value] * 4} for _ in range(3)]}
        assert scorer.score(Challenge("/v1/embeddings", {}, reference), answer) == 0.0
