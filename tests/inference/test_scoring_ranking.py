"""Text scoring against miners that serve something other than the reference model under its name.

The honest miner serves SmolLM2 as shipped (the reference's own GGUF, greedy as asked). The others serve what a
miner could plausibly get away with: the same model sampled hot (ignoring the requested temperature), the same
model requantized to Q4_0 by llama.cpp (only Q4_1 ships), a trigram model built from the prompt set and from
the reference's answers to earlier probes, the same model cut to a few tokens per answer, the echo backend, and
the honest model answering only every other request (the rest fail, as a crashed or overloaded miner's would).
Every miner answers through the miner's own request parsing and answer building (``wire``), and the scores are
the validator's ``TextScorer.score``; a failed request scores 0, as in the validator loop.

The honest miner must rank first by ``MARGIN``: its mean score at least that many times the best other's, and
``SUBSTITUTE_MARGIN`` times that of any miner serving another model (not the same weights at another precision).
Both are more than 1 / (1 - latency_weight) = 1.25, so the ranking holds even if the honest miner took the whole
timeout and its rival answered at once. The test can fail: scored by the first version's rule (the reference's
likelihood of the answer, 0 below 0.05), the same answers miss the margin, and the test checks that they do.
"""

from __future__ import annotations

import asyncio
import collections
import random
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import pytest

from gridmint.inference import wire
from gridmint.inference.backends.base import Generation, GenerationResult
from gridmint.inference.backends.echo import EchoBackend
from gridmint.inference.validator.challenges import draw_messages
from gridmint.inference.validator.scoring import Challenge, Judgement, TextScorer

# The honest miner's mean score over the best other's. The miner that answers half the requests with the honest
# model scores half by construction (measured: 0.487 against 0.971, a lead of 1.99). The requantized miner is the
# same weights at another precision and often picks the same greedy tokens: over 60 challenges it averaged 0.21
# (0.09 to 0.35 per 20; 12 challenges have given it 0.07 and 0.50), so it is held to MARGIN only. The rest serve
# another model and must trail further (measured: terse 0.136, hot, trigram and echo 0: a lead of 7.1).
MARGIN = 1.5
SUBSTITUTE_MARGIN = 3.0
CHALLENGES = 12
LLAMA_FTYPE_MOSTLY_Q4_0 = 2


class Generates(Protocol):
    async def generate(self, request: Generation) -> GenerationResult: ...


class Resampled:
    """The wrapped model with some request fields overridden: another temperature, fewer tokens."""

    def __init__(self, inner: Generates, **fields: Any) -> None:
        self.inner, self.fields = inner, fields

    async def generate(self, request: Generation) -> GenerationResult:
        return await self.inner.generate(replace(request, **self.fields))


class EveryOther:
    """The wrapped model, failing every second request."""

    def __init__(self, inner: Generates) -> None:
        self.inner, self.calls = inner, 0

    async def generate(self, request: Generation) -> GenerationResult:
        self.calls += 1
        if self.calls % 2 == 0:
            raise RuntimeError("overloaded")
        return await self.inner.generate(request)


class Trigram:
    """A word trigram model over a corpus, continuing from the question's last two words."""

    def __init__(self, corpus: list[str], seed: int) -> None:
        self.next: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        self.words: list[str] = []
        for text in corpus:
            words = text.split()
            self.words += words
            for a, b, c in zip(words, words[1:], words[2:], strict=False):
                self.next[(a, b)].append(c)
        self.rng = random.Random(seed)

    async def generate(self, request: Generation) -> GenerationResult:
        assert request.messages is not None
        context = ["", *request.messages[-1]["content"].split()][-2:]
        produced: list[str] = []
        for _ in range(request.max_tokens * 3 // 4):  # about a token and a third per word
            word = self.rng.choice(self.next.get((context[0], context[1])) or self.words)
            produced.append(word)
            context = [context[1], word]
        return GenerationResult(" ".join(produced), 0, len(produced))


class RecordingScorer(TextScorer):
    """The validator's scorer, keeping every judgement so the test can score the same answers by another rule."""

    def __init__(self) -> None:
        super().__init__()
        self.judgements: list[Judgement] = []

    def judge(self, messages: list[dict[str, str]], answer: str, max_tokens: int) -> Judgement:
        judgement = super().judge(messages, answer, max_tokens)
        self.judgements.append(judgement)
        return judgement


def requantized(directory: Path) -> Path:
    import llama_cpp

    from gridmint.inference.backends.llama_cpp import default_model_path

    target = directory / "SmolLM2-135M-Instruct.Q4_0.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True
    params.nthread = 1
    assert llama_cpp.llama_model_quantize(str(default_model_path()).encode(), str(target).encode(), params) == 0
    return target


async def serve(model: Generates, challenge: Challenge) -> dict[str, Any] | None:
    """What the miner's chat endpoint does with the request; None where the miner fails it."""
    request, _ = wire.parse_chat(challenge.payload)
    try:
        result = await model.generate(request)
    except RuntimeError:
        return None
    return wire.chat_answer("probe", request.model, [result])


def honest_lead(means: dict[str, float]) -> float:
    best_other = max(mean for name, mean in means.items() if name != "honest")
    return means["honest"] / best_other if best_other > 0 else float("inf")


@pytest.mark.slow
def test_the_honest_model_ranks_first_against_plausible_substitutes(tmp_path: Path) -> None:
    from gridmint.inference.backends.llama_cpp import SMOLLM2_MODEL, LlamaCppBackend

    scorer = RecordingScorer()
    smollm2 = LlamaCppBackend(n_threads=2)
    rng = random.Random(23)  # stands in for the validator's own randomness; fixed so a failure can be replayed

    # The trigram miner learned from the prompt set and from what the reference said to probes it saw before.
    corpus = []
    for _ in range(8):
        messages = draw_messages(rng)
        said = asyncio.run(smollm2.generate(Generation(SMOLLM2_MODEL, messages=messages, max_tokens=32)))
        corpus += [message["content"] for message in messages] + [said.text]

    miners: dict[str, Generates] = {
        "honest": smollm2,
        "hot": Resampled(smollm2, temperature=1.5, seed=7),
        "q4_0": LlamaCppBackend(model_path=str(requantized(tmp_path)), model_name=SMOLLM2_MODEL, n_threads=2),
        "trigram": Trigram(corpus, seed=5),
        "terse": Resampled(smollm2, max_tokens=3),
        "echo": EchoBackend(model=SMOLLM2_MODEL),
        "every_other": EveryOther(smollm2),
    }
    scores: dict[str, list[float]] = {name: [] for name in miners}
    likelihoods: dict[str, list[float]] = {name: [] for name in miners}
    for _ in range(CHALLENGES):
        challenge = scorer.draw(rng)
        for name, model in miners.items():
            answer = asyncio.run(serve(model, challenge))
            judged = len(scorer.judgements)
            scores[name].append(scorer.score(challenge, answer) if answer is not None else 0.0)
            # the first version's rule on the same judgement (0 where the scorer never got to judge)
            likelihood = scorer.judgements[-1].likelihood if len(scorer.judgements) > judged else 0.0
            likelihoods[name].append(likelihood if likelihood >= 0.05 else 0.0)

    means = {name: statistics.fmean(values) for name, values in scores.items()}
    first_version = {name: statistics.fmean(values) for name, values in likelihoods.items()}
    report = ", ".join(f"{name} {mean:.3f}" for name, mean in means.items())
    print(f"\nmean scores: {report}\nby the first version's rule: "
          + ", ".join(f"{name} {mean:.3f}" for name, mean in first_version.items()))
    assert max(means, key=means.__getitem__) == "honest", report
    assert honest_lead(means) >= MARGIN, report
    substitutes = {name: mean for name, mean in means.items() if name not in ("every_other", "q4_0")}
    assert honest_lead(substitutes) >= SUBSTITUTE_MARGIN, report
    assert means["honest"] > 0.9, report  # the honest model's own greedy answers agree with the reference

    # The test can fail: the likelihood-only rule, on these same answers, does not give the honest miner its margin.
    assert honest_lead(first_version) < MARGIN, first_version
