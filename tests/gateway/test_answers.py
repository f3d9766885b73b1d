"""A signed answer counts only in the shape its endpoint promises: anything else is a MalformedAnswerError."""

from __future__ import annotations

import orjson
import pytest

from gridmint.gateway.answers import MalformedAnswerError, read_answer

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"


def test_well_formed_answers_give_their_usage_and_text() -> None:
    chat = orjson.dumps({"choices": [{"message": {"content": "hi"}}], "usage": {"completion_tokens": 1}})
    assert read_answer(CHAT, chat, 0) == ({"completion_tokens": 1}, "hi")
    assert read_answer("/v1/completions", b'{"choices": [{"text": "yo"}]}', 0) == ({}, "yo")
    vectors = orjson.dumps({"data": [{"embedding": [0.5, 1]}, {"embedding": [1e30, -2.0]}]})
    assert read_answer(EMBED, vectors, 2) == ({}, "")


@pytest.mark.parametrize(("path", "body", "inputs"), [
    (CHAT, b"[1, 2, 3]", 0),
    (CHAT, b"not json", 0),
    (CHAT, b'{"choices": {"0": 1}}', 0),
    (CHAT, b'{"choices": []}', 0),
    (CHAT, b'{"choices": [{"message": "hi"}]}', 0),
    (CHAT, b'{"choices": [{"message": {"content": 7}}]}', 0),
    (CHAT, b'{"choices": [{"message": {"content": "x"}}], "usage": [1]}', 0),
    (EMBED, b'{"data": "vectors"}', 1),
    (EMBED, b'{"data": [{"embedding": [1.0]}]}', 2),
    (EMBED, b'{"data": [{"embedding": [1.0, 2.0]}, {"embedding": [1.0]}]}', 2),
    (EMBED, b'{"data": [{"embedding": ["1.0"]}]}', 1),
    (EMBED, b'{"data": [{"embedding": []}]}', 1),
    (EMBED, b'{"data": [{"embedding": [NaN, 1.0]}]}', 1),
    (EMBED, b'{"data": [{"embedding": [1e999]}]}', 1),
    (EMBED, orjson.dumps({"data": [{"embedding": [1e200] * 8}]}), 1),  # finite numbers, an infinite norm
])
def test_malformed_signed_answers_are_refused(path: str, body: bytes, inputs: int) -> None:
    with pytest.raises(MalformedAnswerError):
        read_answer(path, body, inputs)


CITY = {"type": "json_schema", "json_schema": {"name": "city", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def _structured(text: str, finish: str) -> bytes:
    return orjson.dumps({"choices": [{"message": {"content": text}, "finish_reason": finish}]})


def test_a_structured_answer_cut_short_by_max_tokens_is_taken_only_if_it_could_hold_them() -> None:
    """A truncated structured answer cannot meet its schema, so "length" lets it through; but only an answer long
    enough to have been cut at ``max_tokens``: a short answer off the schema that merely claims the cut is
    malformed, else any miner skips the schema check by writing "length"."""
    cut = '{"city": "Llanfairpwllgwyngyllgogerychwyrndrobwllll'
    assert read_answer(CHAT, _structured(cut, "length"), 0, CITY, max_tokens=16)[1] == cut
    with pytest.raises(MalformedAnswerError, match="cannot hold the 64 tokens"):
        read_answer(CHAT, _structured('{"town": 1}', "length"), 0, CITY, max_tokens=64)
    with pytest.raises(MalformedAnswerError):
        read_answer(CHAT, _structured('{"town": 1}', "stop"), 0, CITY, max_tokens=64)
    assert read_answer(CHAT, _structured('{"city": "Paris"}', "stop"), 0, CITY, max_tokens=64)[1] == '{"city": "Paris"}'
