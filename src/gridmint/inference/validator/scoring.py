"""Scoring plug-ins, one per modality. Each draws a challenge and scores a miner's answer in [0, 1].

- **text-generation**: the validator runs the reference model itself (SmolLM2 through llama.cpp) and scores an
  answer by the reference model's likelihood of it, token by token, given the prompt: the geometric mean of the
  per-token probabilities. A real model's answer scores far above random tokens. The claimed model is checked
  too: the answer must name the model that was asked for, and an answer to a greedy (temperature 0) probe whose
  likelihood is below ``claim_threshold`` is taken as a different model than claimed and scores 0.
- **embedding**: the validator embeds the same texts with the reference model; the score is the mean cosine
  similarity with the reference vectors (clipped at 0), and the request repeats one text so that a miner whose
  two vectors for it differ (cosine below 0.999) scores 0.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from gridmint.inference.backends.base import EMBEDDING, TEXT_GENERATION
from gridmint.inference.validator.challenges import draw_question, draw_sentences


@dataclass(frozen=True)
class Challenge:
    path: str
    payload: dict[str, Any]
    context: Any  # what the scorer needs to judge the answer


class Scorer(Protocol):
    modality: str
    model: str

    def draw(self, rng: random.Random) -> Challenge: ...

    def score(self, challenge: Challenge, answer: Any) -> float: ...


class TextScorer:
    modality = TEXT_GENERATION

    def __init__(self, model: str = "smollm2-135m-instruct", model_path: str | None = None, max_tokens: int = 24,
                 claim_threshold: float = 0.05) -> None:
        from llama_cpp import Llama

        from gridmint.inference.backends.llama_cpp import ChatPrompt, default_model_path

        self.model = model
        self.max_tokens = max_tokens
        self.claim_threshold = claim_threshold
        self.llama = Llama(model_path=model_path or str(default_model_path()), n_ctx=1024, logits_all=True,
                           verbose=False, seed=0)
        self._lock = threading.Lock()  # one llama.cpp context: answers are scored one at a time
        self._chat_prompt = ChatPrompt(self.llama)

    def draw(self, rng: random.Random) -> Challenge:
        messages = [{"role": "user", "content": draw_question(rng)}]
        payload = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens, "temperature": 0,
                   "seed": rng.randrange(2**31)}
        return Challenge("/v1/chat/completions", payload, messages)

    def likelihood(self, messages: list[dict[str, str]], answer: str) -> float:
        """Geometric mean probability of the answer's tokens under the reference model."""
        prompt = self._chat_prompt(messages)
        prompt_tokens = self.llama.tokenize(prompt.encode(), add_bos=False, special=True)
        answer_tokens = self.llama.tokenize(answer.encode(), add_bos=False, special=False)[: 4 * self.max_tokens]
        if not answer_tokens:
            return 0.0
        tokens = prompt_tokens + answer_tokens
        with self._lock:
            cast(Any, self.llama).reset()  # untyped in llama-cpp-python
            self.llama.eval(tokens)
            logits = np.asarray(self.llama.scores[: len(tokens)], dtype=np.float64)
        rows = logits[len(prompt_tokens) - 1: len(tokens) - 1]
        shifted = rows - rows.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        chosen = log_probs[np.arange(len(answer_tokens)), answer_tokens]
        return math.exp(float(chosen.mean()))

    def score(self, challenge: Challenge, answer: Any) -> float:
        try:
            if answer.get("model") != self.model:
                return 0.0
            text = answer["choices"][0]["message"]["content"]
        except (AttributeError, KeyError, IndexError, TypeError):
            return 0.0
        if not isinstance(text, str) or not text.strip():
            return 0.0
        quality = self.likelihood(challenge.context, text)
        return 0.0 if quality < self.claim_threshold else quality


class EmbeddingScorer:
    modality = EMBEDDING

    def __init__(self, model: str | None = None) -> None:
        from gridmint.inference.backends.wordllama import WordLlamaBackend

        self.reference = WordLlamaBackend()
        self.model = model or self.reference.model

    def draw(self, rng: random.Random) -> Challenge:
        texts = draw_sentences(rng)
        texts.append(texts[0])  # a repeat: the same text must give the same vector
        reference = np.asarray(self.reference._embed(texts).vectors)
        return Challenge("/v1/embeddings", {"model": self.model, "input": texts}, reference)

    def score(self, challenge: Challenge, answer: Any) -> float:
        try:
            if answer.get("model") != self.model:
                return 0.0
            vectors = np.asarray([item["embedding"] for item in answer["data"]], dtype=np.float64)
        except (AttributeError, KeyError, TypeError, ValueError):
            return 0.0
        reference = np.asarray(challenge.context)
        if vectors.shape != reference.shape or not np.isfinite(vectors).all():
            return 0.0
        norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1)
        if np.any(norms == 0):
            return 0.0
        cosine = (vectors * reference).sum(axis=1) / norms
        repeat = vectors[0] @ vectors[-1] / (np.linalg.norm(vectors[0]) * np.linalg.norm(vectors[-1]))
        if repeat < 0.999:
            return 0.0
        score = float(np.clip(cosine, 0.0, 1.0).mean())
        return score if math.isfinite(score) else 0.0  # huge values overflow the norms into inf/inf


def make_scorer(modality: str) -> Scorer:
    if modality == TEXT_GENERATION:
        return TextScorer()
    if modality == EMBEDDING:
        return EmbeddingScorer()
    raise ValueError(f"no scorer for modality '{modality}'")
