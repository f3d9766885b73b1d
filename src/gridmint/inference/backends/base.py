"""What every backend provides, and the request and result shapes the miner hands it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

TEXT_GENERATION = "text-generation"
EMBEDDING = "embedding"
ANY_MODALITY = "any"  # the echo backend answers every endpoint


@dataclass(frozen=True)
class Generation:
    """A chat or completion request, already validated by the miner."""

    model: str
    messages: list[dict[str, str]] | None = None  # chat
    prompt: str | None = None  # completion
    max_tokens: int = 128
    temperature: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"


@dataclass(frozen=True)
class StreamPiece:
    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0  # set on the last piece
    completion_tokens: int = 0


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: list[list[float]]
    prompt_tokens: int


class Backend(Protocol):
    name: str
    modality: str

    def models(self) -> list[str]: ...

    async def generate(self, request: Generation) -> GenerationResult: ...

    def stream(self, request: Generation) -> AsyncIterator[StreamPiece]: ...

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult: ...


class UnsupportedError(Exception):
    """The backend does not do this (an embedding model asked to chat, say)."""
