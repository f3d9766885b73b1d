"""``echo``: answers with the prompt. For protocol tests and benchmarks only; never a default.

A request that must call a tool gets a call to the named (or first) function with the last message as its
arguments when that is a JSON object, ``{}`` otherwise; logprobs are 0 for every word. Structured requests get the
prompt too, so a test chooses whether the answer matches its schema."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gridmint.inference.backends.base import (
    ANY_MODALITY,
    EmbeddingResult,
    Generation,
    GenerationResult,
    StreamPiece,
    TokenLogprob,
    ToolCall,
)

ECHO_MODEL = "echo"
ECHO_DIMENSIONS = 16


def _prompt_text(request: Generation) -> str:
    if request.messages:
        return str(request.messages[-1].get("content", ""))
    return request.prompt or ""


def _count(text: str) -> int:
    return len(text.split())


def _forced_call(request: Generation) -> ToolCall | None:
    if not request.tools or request.tool_choice in ("none", "auto"):
        return None
    name = request.tools[0]["function"]["name"] if request.tool_choice == "required" else request.tool_choice
    try:
        arguments = orjson.loads(_prompt_text(request))
    except orjson.JSONDecodeError:
        arguments = None
    return ToolCall("call_echo", name, orjson.dumps(arguments if isinstance(arguments, dict) else {}).decode())


def _logprobs(request: Generation, pieces: list[str]) -> list[TokenLogprob] | None:
    return [TokenLogprob(piece, 0.0, [(piece, 0.0)][: request.top_logprobs]) for piece in pieces] \
        if request.logprobs else None


ECHO_CAPABILITIES: dict[str, Any] = {"tools": True, "structured_outputs": True, "logprobs": True, "n": True,
                                     "context_length": 8192, "quantization": "none"}


class EchoBackend:
    name = "echo"
    modality = ANY_MODALITY

    def __init__(self, model: str = ECHO_MODEL, capabilities: dict[str, Any] | None = None) -> None:
        self.model = model
        self.calls = 0  # tests assert that refused requests never got here
        self.capabilities = ECHO_CAPABILITIES if capabilities is None else capabilities

    def models(self) -> list[str]:
        return [self.model]

    async def generate(self, request: Generation) -> GenerationResult:
        self.calls += 1
        text = _prompt_text(request)
        call = _forced_call(request)
        if call is not None:
            return GenerationResult("", _count(text), _count(call.arguments), "tool_calls", [call])
        words = text.split()[: request.max_tokens]
        pieces = [word if index == 0 else " " + word for index, word in enumerate(words)]
        return GenerationResult(" ".join(words), _count(text), len(words), "stop",
                                logprobs=_logprobs(request, pieces))

    async def stream(self, request: Generation) -> AsyncIterator[StreamPiece]:
        self.calls += 1
        text = _prompt_text(request)
        call = _forced_call(request)
        if call is not None:
            yield StreamPiece("", tool_call=ToolCall(call.id, call.name, ""))
            yield StreamPiece("", tool_arguments=call.arguments)
            yield StreamPiece("", "tool_calls", _count(text), _count(call.arguments))
            return
        words = text.split()[: request.max_tokens]
        for index, word in enumerate(words):
            last = index == len(words) - 1
            piece = word if index == 0 else " " + word
            yield StreamPiece(piece, "stop" if last else None, _count(text) if last else 0,
                              len(words) if last else 0, logprobs=_logprobs(request, [piece]))
        if not words:
            yield StreamPiece("", "stop", _count(text), 0)

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        self.calls += 1
        vectors = []
        for text in inputs:
            digest = hashlib.sha256(text.encode()).digest()[: ECHO_DIMENSIONS]
            vectors.append([value / 255 for value in struct.unpack(f"{ECHO_DIMENSIONS}B", digest)])
        return EmbeddingResult(vectors, sum(_count(t) for t in inputs))
