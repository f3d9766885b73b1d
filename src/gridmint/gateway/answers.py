"""What a gateway reads from a miner's signed unary answer before it counts as one: the shape the consumer was
promised, or MalformedAnswerError (the gateway then fails over, and the miner's breaker counts a failure).

A signature proves who sent the bytes, not that they are an answer: a miner can sign a list, a number, an embedding
of the wrong count, text instead of numbers, or numbers so large that no consumer can take their norm. Those must
fail over like any other fault, not reach the consumer as a paid success nor crash the request.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson


class MalformedAnswerError(Exception):
    """The miner's answer is signed but not the answer the endpoint promises; the message says what is wrong."""


def read_answer(path: str, body: bytes, inputs: int) -> tuple[dict[str, Any], str]:
    """The answer's usage (a dict, maybe empty) and generated text ("" for embeddings). ``inputs``: how many
    vectors an embedding answer must hold."""
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
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedAnswerError("choices is not a list of objects")
    if path == "/v1/chat/completions":
        message = choices[0].get("message")
        text = message.get("content") if isinstance(message, dict) else None
    else:
        text = choices[0].get("text")
    if not isinstance(text, str):
        raise MalformedAnswerError("the answer holds no generated text")
    return usage, text


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
