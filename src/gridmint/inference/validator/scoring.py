"""Scoring plug-ins, one per modality. Each draws a challenge and scores a miner's answer in [0, 1].

- **text-generation**: the validator runs the reference model itself (SmolLM2 through llama.cpp) and asks for
  greedy (temperature 0) answers, which the reference can check in one pass: every token of an honest answer is
  the reference's first choice given the prompt and the tokens before it. The score is the share of tokens that
  agree, times the share of the asked length the answer covers; the answer must name the model asked for, and
  one that opens otherwise or agrees on less than ``claim_agreement`` of its tokens is another model than
  claimed and scores 0. A share of the probes (``structured_share``) asks for a structured answer
  (``response_format``): the reference decodes its own greedy answer under the same grammar, as a llama.cpp miner
  does; an answer that does not parse or match its schema scores 0 (unless the reference's own was cut by
  ``max_tokens`` too), and one that does scores its token similarity with the reference's.
- **embedding**: the validator embeds the same texts with the reference model; the score is the mean cosine
  similarity with the reference vectors (clipped at 0), and the request repeats one text so that a miner whose
  two vectors for it differ (cosine below 0.999) scores 0.
"""

from __future__ import annotations

import difflib
import json
import math
import random
import threading
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from gridmint.inference.backends import tool_prompt
from gridmint.inference.backends.base import EMBEDDING, TEXT_GENERATION, Generation
from gridmint.inference.structured import answer_problem
from gridmint.inference.validator.challenges import draw_messages, draw_sentences

STRUCTURED_FORMATS: tuple[dict[str, Any], ...] = (
    {"type": "json_object"},
    {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": {
        "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
        "additionalProperties": False}}},
    {"type": "json_schema", "json_schema": {"name": "words", "strict": True, "schema": {
        "type": "object", "properties": {"words": {"type": "array", "items": {"type": "string"}},
                                         "count": {"type": "integer"}},
        "required": ["words", "count"], "additionalProperties": False}}},
)


@dataclass(frozen=True)
class StructuredReference:
    """A structured probe's messages and format, and the reference's own greedy answer under its grammar."""

    messages: list[dict[str, str]]
    response_format: dict[str, Any]
    text: str
    complete: bool  # the reference's answer ended by itself (not cut by max_tokens)


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


@dataclass(frozen=True)
class Judgement:
    """What the reference model makes of a greedy answer, all from one pass over prompt and answer."""

    tokens: int  # the answer's length in the reference's tokens (cut at max_tokens + 2)
    agreement: float  # share of those tokens that are the reference's own first choice at that point
    opens: bool  # the answer's first token is the reference's first choice
    stopped: bool  # the reference's first choice after the answer is to end the turn
    likelihood: float  # geometric-mean probability of the answer's tokens: the first version's score, kept for
    # comparison and for answers that were sampled rather than greedy


class TextScorer:
    """Greedy probes, judged by teacher forcing: an honest greedy answer is the reference's first choice at every
    token, so the score is the share of tokens that are (``agreement``) times the share of the asked length the
    answer covers (full when it has ``max_tokens`` tokens, two spare for re-tokenisation, or stops where the
    reference would end the turn). An answer that does not open with the reference's first choice, or agrees on
    less than ``claim_agreement`` of its tokens, is taken as another model than claimed and scores 0.

    Why not the likelihood alone (the first version): measured on 16 prompts of an earlier template set, the
    reference's greedy answers had a geometric-mean token probability of 0.44, the echo backend's copy of the
    question 0.28, the first word of the greedy answer alone 0.41 and SmolLM2 sampled at temperature 0.7 0.33, so a
    miner that answers one token, or none of its own, kept most of the honest miner's score. Agreement with the
    first choice was 0.99 for the honest answers against 0.81 (echo), 0.67 (another quantization), 0.65 (temperature
    0.7), 0.52 (temperature 1.5), 0.23 (an n-gram model). Honest agreement can dip to 0.8 (words the reference
    re-tokenises differently), which is why the threshold is not higher; a copied prompt agrees on its later tokens
    (copying is predictable) but on 40 drawn prompts never opened with the reference's first token, while the honest
    answer always did. The length rule gives a one-word answer 1/24 of the asked length.
    """

    modality = TEXT_GENERATION

    def __init__(self, model: str = "smollm2-135m-instruct", model_path: str | None = None, max_tokens: int = 24,
                 claim_agreement: float = 0.8, structured_share: float = 0.2) -> None:
        from llama_cpp import Llama

        from gridmint.inference.backends.llama_cpp import ChatPrompt, default_model_path

        self.model = model
        self.max_tokens = max_tokens
        self.claim_agreement = claim_agreement
        self.structured_share = structured_share
        self.llama = Llama(model_path=model_path or str(default_model_path()), n_ctx=1024, logits_all=True,
                           verbose=False, seed=0)
        self._lock = threading.Lock()  # one llama.cpp context: answers are judged one at a time
        self._evaluated_prompt: list[int] = []  # the prompt whose pass the context holds
        self._chat_prompt = ChatPrompt(self.llama)

    def draw(self, rng: random.Random) -> Challenge:
        """A fresh question (see challenges.py) and an answer length between 2/3 and 4/3 of ``max_tokens``."""
        messages = draw_messages(rng)
        max_tokens = rng.randrange(max(1, 2 * self.max_tokens // 3), 4 * self.max_tokens // 3 + 1)
        # No seed: greedy decoding needs none, and few customers send one, so a seed would mark the request a probe.
        payload = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
        if self.structured_share and rng.random() < self.structured_share:
            payload["response_format"] = rng.choice(STRUCTURED_FORMATS)
            payload["max_tokens"] = rng.randrange(32, 65)  # room for a whole JSON answer
            return Challenge("/v1/chat/completions", payload, self._structured_reference(payload))
        return Challenge("/v1/chat/completions", payload, messages)

    def _structured_reference(self, payload: dict[str, Any]) -> StructuredReference:
        """The reference's greedy answer under the format's grammar, from the prompt a llama.cpp miner renders."""
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        response_format = payload["response_format"]
        request = Generation(model=self.model, messages=payload["messages"], response_format=response_format)
        prompt = self._chat_prompt(tool_prompt.render_messages(request))
        schema = response_format.get("json_schema", {}).get("schema")
        grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False) if schema is None else \
            LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        with self._lock:
            self._evaluated_prompt = []  # generating replaces the context that judge() keeps
            answer: Any = self.llama.create_completion(
                prompt=self.llama.tokenize(prompt.encode(), add_bos=False, special=True),
                max_tokens=payload["max_tokens"], temperature=0, repeat_penalty=1.0, grammar=grammar)
        choice = answer["choices"][0]
        return StructuredReference(payload["messages"], response_format, str(choice["text"]),
                                   choice.get("finish_reason") != "length")

    def _score_structured(self, reference: StructuredReference, text: str) -> float:
        if reference.complete and answer_problem(text, reference.response_format) is not None:
            return 0.0
        ours = self.llama.tokenize(reference.text.encode(), add_bos=False, special=False)
        theirs = self.llama.tokenize(text.encode(), add_bos=False, special=False)
        return difflib.SequenceMatcher(None, ours, theirs, autojunk=False).ratio()

    def judge(self, messages: list[dict[str, str]], answer: str, max_tokens: int) -> Judgement:
        prompt = self._chat_prompt(messages)
        prompt_tokens = self.llama.tokenize(prompt.encode(), add_bos=False, special=True)
        answer_tokens = self.llama.tokenize(answer.encode(), add_bos=False, special=False)[: max_tokens + 2]
        if not answer_tokens:
            return Judgement(0, 0.0, False, False, 0.0)
        tokens = prompt_tokens + answer_tokens
        with self._lock:
            # Every miner of a round answers the same prompt: its pass is kept (the KV cache and the logits of its
            # last token) and only the answer is run for each; eval drops the cache past n_tokens.
            if self._evaluated_prompt != prompt_tokens:
                cast(Any, self.llama).reset()  # untyped in llama-cpp-python
                self._evaluated_prompt = []
                self.llama.eval(prompt_tokens)
                self._evaluated_prompt = prompt_tokens
            self.llama.n_tokens = len(prompt_tokens)
            self.llama.eval(answer_tokens)
            # the rows that predict each answer token, and the one after the last
            rows = np.asarray(self.llama.scores[len(prompt_tokens) - 1: len(tokens)], dtype=np.float64)
        chosen = np.asarray(answer_tokens)
        first_choices = rows.argmax(axis=1)
        agrees = first_choices[:-1] == chosen
        agreement = float(agrees.mean())
        shifted = rows[:-1] - rows[:-1].max(axis=1, keepdims=True)
        log_probs = shifted[np.arange(len(chosen)), chosen] - np.log(np.exp(shifted).sum(axis=1))
        return Judgement(len(chosen), agreement, bool(agrees[0]), bool(first_choices[-1] == self.llama.token_eos()),
                         math.exp(float(log_probs.mean())))

    def score(self, challenge: Challenge, answer: Any) -> float:
        try:
            if answer.get("model") != self.model:
                return 0.0
            text = answer["choices"][0]["message"]["content"]
        except (AttributeError, KeyError, IndexError, TypeError):
            return 0.0
        if not isinstance(text, str) or not text.strip():
            return 0.0
        if isinstance(challenge.context, StructuredReference):
            return self._score_structured(challenge.context, text)
        max_tokens = challenge.payload["max_tokens"]
        judgement = self.judge(challenge.context, text, max_tokens)
        if not judgement.opens or judgement.agreement < self.claim_agreement:
            return 0.0
        full = judgement.stopped or judgement.tokens >= max_tokens - 2
        return judgement.agreement * (1.0 if full else judgement.tokens / max_tokens)


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
