"""What a gateway reads from a miner's signed unary answer before it counts as one: the shape the consumer was
promised, or MalformedAnswerError (the gateway then fails over, and the miner's breaker counts a failure).

A signature proves who sent the bytes, not that they are an answer: a miner can sign a list, a number, an embedding
of the wrong count, text instead of numbers, or numbers so large that no consumer can take their norm. Those must
fail over like any other fault, not reach the consumer as a paid success nor crash the request. So must a structured
answer that is not what the request's ``response_format`` asked for (``inference.structured``), unless the
consumer's own ``max_tokens`` cut it short: an answer that says so (``finish_reason`` "length") must hold text
enough for ``max_tokens`` tokens, or any miner could skip the schema by claiming the cut.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from gridmint.gateway import metering
from gridmint.inference.structured import answer_problem


class MalformedAnswerError(Exception):
    """The miner's answer is signed but not the answer the endpoint promises; the message says what is wrong."""


def read_answer(path: str, body: bytes, inputs: int, response_format: dict[str, Any] | None = None,
                max_tokens: int = 0) -> tuple[dict[str, Any], str]:
    """The answer's usage (a dict, maybe empty) and generated text of every choice, tool calls included ("" for
    embeddings). ``inputs``: how many vectors an embedding answer must hold; ``max_tokens``: the request's."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedAnswerError("the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise MalformedAnswerError("the answer is not a JSON object")
    usage = answer.get("usage") or {}
    if not isinstance(usage, dict):
        raise MalformedAnswerError("usage is not an object")
    if path == "/v1/embeddings":
        _check_vectors(answer.get("data"), inputs)
        return usage, ""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
        raise MalformedAnswerError("choices is not a list of objects")
    texts = []
    for choice in choices:
        text = _choice_text(path, choice)
        problem = answer_problem(text, response_format)
        if problem is not None:
            if choice.get("finish_reason") != "length":
                raise MalformedAnswerError(problem)
            if metering.text_bound(text) < max_tokens:
                raise MalformedAnswerError(f"{problem}, and its {len(text.encode())} bytes cannot hold the "
                                           f"{max_tokens} tokens after which 'length' would have cut it short")
        texts.append(text)
    return usage, "".join(texts)


def _choice_text(path: str, choice: dict[str, Any]) -> str:
    if path != "/v1/chat/completions":
        text = choice.get("text")
        if not isinstance(text, str):
            raise MalformedAnswerError("the answer holds no generated text")
        return text
    message = choice.get("message")
    if not isinstance(message, dict):
        raise MalformedAnswerError("a choice holds no message")
    calls = message.get("tool_calls") or []
    content = message.get("content")
    if not isinstance(content, str) and not (content is None and calls):
        raise MalformedAnswerError("the answer holds no generated text")
    try:
        called = "".join(c["function"]["name"] + c["function"]["arguments"] for c in calls)
    except (KeyError, TypeError):
        raise MalformedAnswerError("a tool call is not {function: {name, arguments}}") from None
    if not isinstance(called, str):
        raise MalformedAnswerError("a tool call's name or arguments is not text")
    return (content or "") + called


def _check_vectors(data: Any, inputs: int) -> None:
    if not isinstance(data, list) or len(data) != inputs or not all(isinstance(d, dict) for d in data):
        raise MalformedAnswerError(f"data is not a list of {inputs} embedding objects")
    rows = [d.get("embedding") for d in data]
    if not all(isinstance(row, list) and row for row in rows):
        raise MalformedAnswerError("an embedding is not a list of numbers")
    try:
        vectors = np.asarray(rows)  # numbers give an int or float matrix; text, objects or ragged rows do not
    except (ValueError, TypeError):
        vectors = None
    if vectors is None or vectors.ndim != 2 or vectors.dtype.kind not in "if":
        raise MalformedAnswerError("the embeddings are not equally long lists of numbers")
    with np.errstate(over="ignore", invalid="ignore"):  # huge values overflow the norm: that is what is checked
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    if not np.isfinite(norms).all():
        raise MalformedAnswerError("an embedding holds numbers too large for its length to be finite")
