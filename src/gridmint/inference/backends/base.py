"""What every backend provides, and the request and result shapes the miner hands it."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

TEXT_GENERATION = "text-generation"
EMBEDDING = "embedding"
ANY_MODALITY = "any"  # the echo backend answers every endpoint


@dataclass(frozen=True)
class Generation:
    """A chat or completion request, already validated (``inference.wire``, which applies OpenAI's defaults:
    temperature 1, top_p 1). Built directly, it is greedy (temperature 0), as code that builds one (tests, the
    validator's reference) means. A backend adds defaults only where OpenAI leaves the choice to it (llama.cpp's
    repetition penalty, say)."""

    model: str
    messages: list[dict[str, Any]] | None = None  # chat: role, content, and tool_calls / tool_call_id
    prompt: str | None = None  # completion
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> bias (-100 to 100)
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    # {"type": "json_object"} or {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)  # [{"type": "function", "function": {...}}]
    tool_choice: str = "none"  # "none" | "auto" | "required" | the name of the one function to call


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)  # the most likely tokens at this step, best first


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    tool_calls: list[ToolCall] = field(default_factory=list)  # finish_reason "tool_calls" when any
    logprobs: list[TokenLogprob] | None = None  # when asked for


@dataclass(frozen=True)
class StreamPiece:
    """Text, or a tool call's start (``tool_call`` with empty arguments) or arguments so far (``tool_arguments``)."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0  # set on the last piece
    completion_tokens: int = 0
    tool_call: ToolCall | None = None
    tool_arguments: str = ""
    logprobs: list[TokenLogprob] | None = None


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


class EmbeddingOnly:
    """What an embedding backend answers to a chat or a completion: a refusal naming the backend."""

    name: str

    async def generate(self, request: Generation) -> GenerationResult:
        raise UnsupportedError(f"the {self.name} backend serves embeddings, not text generation")

    def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        raise UnsupportedError(f"the {self.name} backend serves embeddings, not text generation")


def installed_package_folder(package: str, install: str) -> Path:
    """The folder of an installed package that ships model files; nothing is downloaded, so a package that is not
    installed is a ``FileNotFoundError`` saying how to install it (``install``)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the {package} package is not installed: {install}")
    return Path(spec.origin).parent
