"""``echo``: answers with the prompt. For protocol tests and benchmarks only; never a default."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import AsyncIterator

from gridmint.inference.backends.base import (
    ANY_MODALITY,
    EmbeddingResult,
    Generation,
    GenerationResult,
    StreamPiece,
)

ECHO_MODEL = "echo"
ECHO_DIMENSIONS = 16


def _prompt_text(request: Generation) -> str:
    if request.messages:
        return request.messages[-1].get("content", "")
    return request.prompt or ""


def _count(text: str) -> int:
    return len(text.split())


class EchoBackend:
    name = "echo"
    modality = ANY_MODALITY

    def __init__(self, model: str = ECHO_MODEL) -> None:
        self.model = model
        self.calls = 0  # tests assert that refused requests never got here

    def models(self) -> list[str]:
        return [self.model]

    async def generate(self, request: Generation) -> GenerationResult:
        self.calls += 1
        text = _prompt_text(request)
        words = text.split()[: request.max_tokens]
        return GenerationResult(" ".join(words), _count(text), len(words), "stop")

    async def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        self.calls += 1
        text = _prompt_text(request)
        words = text.split()[: request.max_tokens]
        for index, word in enumerate(words):
            last = index == len(words) - 1
            yield StreamPiece(word if index == 0 else " " + word, "stop" if last else None,
                              _count(text) if last else 0, len(words) if last else 0)
        if not words:
            yield StreamPiece("", "stop", _count(text), 0)

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        self.calls += 1
        vectors = []
        for text in inputs:
            digest = hashlib.sha256(text.encode()).digest()[: ECHO_DIMENSIONS]
            vectors.append([value / 255 for value in struct.unpack(f"{ECHO_DIMENSIONS}B", digest)])
        return EmbeddingResult(vectors, sum(_count(t) for t in inputs))
