"""OpenAI-shaped requests and answers: parsing with bounds, and the JSON the miner sends back."""

from __future__ import annotations

import time
from typing import Any

from gridmint.chain.errors import register
from gridmint.inference.backends.base import EmbeddingResult, Generation, GenerationResult, StreamPiece

BAD_REQUEST = register("inference", 1, "bad_request")

MAX_MESSAGES = 256
MAX_TEXT_BYTES = 64 * 1024
MAX_TOKENS = 4_096
MAX_EMBED_INPUTS = 256
ROLES = ("system", "user", "assistant")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value.encode()) > MAX_TEXT_BYTES:
        raise BAD_REQUEST(f"{what}: expected text of at most {MAX_TEXT_BYTES} bytes")
    return value


def _common(body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise BAD_REQUEST("model: expected the name of a model this miner serves")
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 128))
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= MAX_TOKENS:
        raise BAD_REQUEST(f"max_tokens: expected 1 to {MAX_TOKENS}")
    temperature = body.get("temperature", 0.0)
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
        raise BAD_REQUEST("temperature: expected a number from 0 to 2")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise BAD_REQUEST("seed: expected a whole number")
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and len(s) <= 64 for s in stop):
        raise BAD_REQUEST("stop: expected up to 4 strings")
    return {"model": model, "max_tokens": max_tokens, "temperature": float(temperature), "seed": seed, "stop": stop}


def parse_chat(body: Any) -> tuple[Generation, bool]:
    if not isinstance(body, dict):
        raise BAD_REQUEST("expected a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        raise BAD_REQUEST(f"messages: expected 1 to {MAX_MESSAGES} messages")
    cleaned = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise BAD_REQUEST(f"messages[{index}]: expected {{role: system|user|assistant, content: text}}")
        cleaned.append({"role": message["role"], "content": _text(message.get("content", ""), f"messages[{index}]")})
    return Generation(messages=cleaned, **_common(body)), bool(body.get("stream", False))


def parse_completion(body: Any) -> tuple[Generation, bool]:
    if not isinstance(body, dict):
        raise BAD_REQUEST("expected a JSON object")
    return Generation(prompt=_text(body.get("prompt"), "prompt"), **_common(body)), bool(body.get("stream", False))


def parse_embedding(body: Any) -> tuple[str, list[str]]:
    if not isinstance(body, dict):
        raise BAD_REQUEST("expected a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BAD_REQUEST("model: expected the name of a model this miner serves")
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not 1 <= len(inputs) <= MAX_EMBED_INPUTS:
        raise BAD_REQUEST(f"input: expected text or a list of 1 to {MAX_EMBED_INPUTS} texts")
    return model, [_text(item, f"input[{i}]") for i, item in enumerate(inputs)]


def generation_payload(request: Generation, stream: bool) -> dict[str, Any]:
    """A parsed chat or completion request as JSON again, with nothing the parsers did not read: what a gateway
    forwards to a miner (``parse_chat``/``parse_completion`` read it back as the same request)."""
    payload: dict[str, Any] = {"model": request.model, "max_tokens": request.max_tokens,
                               "temperature": request.temperature, "stream": stream}
    if request.messages is not None:
        payload["messages"] = request.messages
    else:
        payload["prompt"] = request.prompt
    if request.seed is not None:
        payload["seed"] = request.seed
    if request.stop:
        payload["stop"] = request.stop
    return payload


def embedding_payload(model: str, inputs: list[str]) -> dict[str, Any]:
    """A parsed embedding request as JSON again (``parse_embedding`` reads it back the same)."""
    return {"model": model, "input": inputs}


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_answer(request_id: str, model: str, result: GenerationResult) -> dict[str, Any]:
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                         "finish_reason": result.finish_reason}],
            "usage": _usage(result.prompt_tokens, result.completion_tokens)}


def completion_answer(request_id: str, model: str, result: GenerationResult) -> dict[str, Any]:
    return {"id": request_id, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": result.text, "finish_reason": result.finish_reason}],
            "usage": _usage(result.prompt_tokens, result.completion_tokens)}


def chunk(request_id: str, model: str, piece: StreamPiece, chat: bool) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": piece.finish_reason}
    if chat:
        choice["delta"] = {"content": piece.text}
    else:
        choice["text"] = piece.text
    payload: dict[str, Any] = {"id": request_id, "object": "chat.completion.chunk" if chat else "text_completion",
                               "created": int(time.time()), "model": model, "choices": [choice]}
    if piece.finish_reason is not None:
        payload["usage"] = _usage(piece.prompt_tokens, piece.completion_tokens)
    return payload


def embedding_answer(model: str, result: EmbeddingResult) -> dict[str, Any]:
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(result.vectors)],
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}}


def models_answer(models: list[str]) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "gridmint-miner"} for m in models]}


def error_body(message: str, code: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}
