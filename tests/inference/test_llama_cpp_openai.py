"""SmolLM2 through llama.cpp with OpenAI's fields: the README's example at its defaults answers without looping,
schemas and forced tool calls are decoded under grammars (and match), logprobs spell the answer, and greedy
requests stay the model's most likely text (what validators check)."""

from __future__ import annotations

import asyncio
import collections
import re
import shlex
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from gridmint.inference import wire
from gridmint.inference.backends.base import StreamPiece
from gridmint.inference.backends.registry import load_backend
from gridmint.inference.structured import answer_problem

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
MOST_REPEATS = 3  # a sensible answer may say "Paris" three times; the answer said "la Femme" dozens
LOOPED = "L'Étoile, la Cité, la Nation, " + "la Femme, " * 20  # the answer the issue reported


@pytest.fixture(scope="module")
def llama() -> Any:
    return load_backend("llama-cpp")


def readme_request() -> dict[str, Any]:
    """The body of the README's curl example, as the README has it."""
    command = re.search(r"^curl .*?\n(?:\s+.*\n)*", README.read_text(), re.MULTILINE)
    assert command is not None
    words = shlex.split(command.group(0).replace("\\\n", " "))
    return dict(orjson.loads(words[words.index("-d") + 1]))


def most_repeated_ngram(text: str, n: int) -> int:
    words = re.findall(r"\w+", text.lower())
    counts = collections.Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return max(counts.values(), default=0)


def test_the_readme_example_at_its_defaults_answers_without_a_loop(llama: Any) -> None:
    assert most_repeated_ngram(LOOPED, 2) > MOST_REPEATS  # the check catches the loop the issue reported
    body = readme_request()
    assert set(body) == {"model", "messages"}  # its defaults: temperature 1, top_p 1, 128 tokens
    request, _ = wire.parse_chat(body)
    for _ in range(3):
        answer = asyncio.run(llama.generate(request))
        assert answer.completion_tokens > 3 and answer.text.strip()
        for n in (2, 3, 4):
            assert most_repeated_ngram(answer.text, n) <= MOST_REPEATS, answer.text


def test_a_strict_schema_is_decoded_to_an_answer_that_matches_it(llama: Any) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"},
                                               "population": {"type": "integer"}},
              "required": ["city", "country", "population"], "additionalProperties": False}
    body = {"model": llama.model, "messages": [{"role": "user", "content": "Name a city and its country."}],
            "max_tokens": 64,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "place", "strict": True, "schema": schema}}}
    request, _ = wire.parse_chat(body)
    for seed in (1,):
        answer = asyncio.run(llama.generate(wire.parse_chat({**body, "seed": seed})[0]))
        assert answer.finish_reason == "stop" and answer_problem(answer.text, request.response_format) is None
    loose, _ = wire.parse_chat({**body, "response_format": {"type": "json_object"}})
    assert isinstance(orjson.loads(asyncio.run(llama.generate(loose)).text), dict)


WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                             "parameters": {"type": "object", "properties": {
                                                 "city": {"type": "string"}}, "required": ["city"]}}},
           {"type": "function", "function": {"name": "get_time", "description": "The time in a city",
                                             "parameters": {"type": "object", "properties": {
                                                 "city": {"type": "string"}}, "required": ["city"]}}}]


def test_a_required_tool_call_is_a_call_to_a_listed_tool_with_arguments_of_its_schema(llama: Any) -> None:
    body = {"model": llama.model, "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": WEATHER, "tool_choice": "required", "max_tokens": 48}
    answer = asyncio.run(llama.generate(wire.parse_chat(body)[0]))
    assert answer.finish_reason == "tool_calls" and answer.text == ""
    [call] = answer.tool_calls
    assert call.name in ("get_weather", "get_time") and isinstance(orjson.loads(call.arguments)["city"], str)
    request, _ = wire.parse_chat({**body, "stream": True, "tool_choice": {"type": "function",
                                                                         "function": {"name": "get_time"}}})

    async def pieces() -> list[StreamPiece]:
        return [piece async for piece in llama.stream(request)]

    streamed = asyncio.run(pieces())
    assert streamed[0].tool_call is not None and streamed[0].tool_call.name == "get_time"
    assert isinstance(orjson.loads("".join(p.tool_arguments for p in streamed))["city"], str)
    assert streamed[-1].finish_reason == "tool_calls" and streamed[-1].completion_tokens > 0


def test_logprobs_spell_the_answer_and_greedy_stays_greedy(llama: Any) -> None:
    body = {"model": llama.model, "messages": [{"role": "user", "content": "Name a color."}], "max_tokens": 12,
            "temperature": 0, "logprobs": True, "top_logprobs": 3}
    request, _ = wire.parse_chat(body)
    answer = asyncio.run(llama.generate(request))
    assert answer.logprobs is not None and "".join(t.token for t in answer.logprobs) == answer.text
    for step in answer.logprobs:  # greedy: each token is the likeliest, and it is listed first among the top 3
        assert step.logprob <= 0 and len(step.top) == 3 and step.top[0] == (step.token, step.logprob)
    plain = asyncio.run(llama.generate(wire.parse_chat({**body, "logprobs": False, "top_logprobs": None})[0]))
    assert plain.text == answer.text  # the same prompt again, without logprobs: recording them changes nothing
    seeded = [asyncio.run(llama.generate(wire.parse_chat({**body, "temperature": 1, "seed": 5})[0])).text
              for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_no_completion_starts_from_a_prompt_the_context_already_holds(llama: Any, monkeypatch: pytest.MonkeyPatch
                                                                     ) -> None:
    """Each llama.cpp completion (the tool choice's too) evaluates at least two new prompt tokens in a batch: a
    prompt held whole would have its last token evaluated alone, and a greedy answer could change."""
    held: list[tuple[int, int]] = []
    real = llama.llama.create_completion

    def watching(prompt: list[int], **options: Any) -> Any:
        held.append((llama.llama.longest_token_prefix(llama.llama._input_ids.tolist(), prompt), len(prompt)))
        return real(prompt=prompt, **options)

    monkeypatch.setattr(llama.llama, "create_completion", watching)
    body = {"model": llama.model, "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": WEATHER, "tool_choice": "required", "max_tokens": 16, "temperature": 0}
    calls = [asyncio.run(llama.generate(wire.parse_chat(body)[0])).tool_calls[0] for _ in range(2)]
    assert (calls[0].name, calls[0].arguments) == (calls[1].name, calls[1].arguments)
    assert len(held) == 4 and all(prefix < length - 1 for prefix, length in held), held


def test_a_stream_the_consumer_leaves_stops_before_the_next_request_runs(llama: Any) -> None:
    """Leaving a stream (a disconnect) stops its generation before the context serves anyone else: no producer is
    left decoding, and the next greedy request gets the answer it gets alone."""
    question = {"model": llama.model, "messages": [{"role": "user", "content": "Name a color."}], "max_tokens": 12,
                "temperature": 0}
    alone = asyncio.run(llama.generate(wire.parse_chat(question)[0])).text

    async def leave_after_one_piece() -> None:
        pieces = llama.stream(wire.parse_chat({**question, "max_tokens": 200, "stream": True})[0])
        await anext(pieces)
        await pieces.aclose()

    asyncio.run(leave_after_one_piece())
    decoded = llama.llama.n_tokens
    assert not [t for t in threading.enumerate() if t.name == "llama-cpp-stream"]
    time.sleep(0.3)
    assert llama.llama.n_tokens == decoded  # nothing decodes after the consumer left
    assert asyncio.run(llama.generate(wire.parse_chat(question)[0])).text == alone
