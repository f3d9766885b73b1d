"""The validator's structured probes: the reference decodes its own greedy answer under the probe's grammar, an
honest llama.cpp miner gives exactly that, and an answer that misses the schema (or is not JSON) scores 0."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest

from gridmint.inference import wire
from gridmint.inference.backends.llama_cpp import LlamaCppBackend
from gridmint.inference.validator.scoring import StructuredReference, TextScorer

pytestmark = pytest.mark.slow


def answer(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "choices": [{"message": {"content": text}}]}


def test_an_honest_structured_answer_scores_full_and_one_off_its_schema_scores_nothing() -> None:
    scorer = TextScorer(structured_share=1.0)
    miner = LlamaCppBackend()
    rng = random.Random(11)
    kinds = set()
    for _ in range(3):
        challenge = scorer.draw(rng)
        reference = challenge.context
        assert isinstance(reference, StructuredReference) and "response_format" in challenge.payload
        kinds.add(reference.response_format["type"])
        request, _ = wire.parse_chat(challenge.payload)  # what a miner reads
        honest = asyncio.run(miner.generate(request))
        assert honest.text == reference.text  # the same greedy answer under the same grammar
        assert scorer.score(challenge, answer(scorer.model, honest.text)) == 1.0
        assert scorer.score(challenge, answer(scorer.model, "Sure! Here is some JSON.")) == 0.0
        unrelated = scorer.score(challenge, answer(scorer.model, orjson.dumps({"unrelated": [1]}).decode()))
        if reference.complete and reference.response_format["type"] == "json_schema":
            assert unrelated == 0.0  # JSON, but not of the schema
        else:  # valid for json_object, or the reference was cut too: judged by likeness alone
            assert unrelated < 0.3
    plain = TextScorer(structured_share=0.0).draw(random.Random(11))
    assert "response_format" not in plain.payload and not isinstance(plain.context, StructuredReference)
    assert kinds  # the probes drew formats
