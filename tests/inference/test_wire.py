"""The one parser of OpenAI requests: OpenAI's defaults, every documented field read or refused by name, and what a
gateway forwards reads back as the same request."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gridmint.chain.errors import ChainError
from gridmint.inference import wire
from gridmint.inference.backends.base import GenerationResult, TokenLogprob, ToolCall

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False}}}
CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
               "required": ["city", "population"], "additionalProperties": False}


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}


def refusal(body: dict[str, Any], parse: Any = wire.parse_chat) -> ChainError:
    with pytest.raises(ChainError) as caught:
        parse(body)
    return caught.value


def test_defaults_are_openais() -> None:
    request, stream = wire.parse_chat(chat())
    assert (request.temperature, request.top_p, request.n, request.presence_penalty, request.frequency_penalty) == (
        1.0, 1.0, 1, 0.0, 0.0)
    assert not stream and request.tool_choice == "none" and request.response_format is None and not request.logprobs
    assert wire.parse_chat(chat(tools=[WEATHER]))[0].tool_choice == "auto"


def test_a_parsed_request_forwarded_reads_back_the_same() -> None:
    body = chat(messages=[{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi", "name": "x"},
                          {"role": "assistant", "content": None, "tool_calls": [
                              {"id": "c1", "type": "function",
                               "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                          {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "sunny"}]}],
                max_completion_tokens=9, stop="END", seed=4, stream=True, user="someone", top_p=0.5,
                presence_penalty=0.5, frequency_penalty=-1, logit_bias={"42": -100}, logprobs=True, top_logprobs=3,
                tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
                stream_options={"include_usage": True}, parallel_tool_calls=False)
    request, stream = wire.parse_chat(body)
    forwarded = wire.generation_payload(request, stream)
    assert wire.parse_chat(forwarded) == (request, stream)
    assert "user" not in forwarded and "stream_options" not in forwarded and "parallel_tool_calls" not in forwarded
    assert request.messages is not None and request.messages[0] == {"role": "system", "content": "be brief"}
    assert request.messages[3] == {"role": "tool", "content": "sunny", "tool_call_id": "c1"}
    assert request.tool_choice == "get_weather" and request.logit_bias == {42: -100.0} and request.max_tokens == 9
    structured, _ = wire.parse_chat(chat(response_format={"type": "json_schema", "json_schema": {
        "name": "city", "schema": CITY_SCHEMA, "strict": True}}, n=3))
    assert wire.parse_chat(wire.generation_payload(structured, False))[0] == structured
    completion, _ = wire.parse_completion({"model": "m", "prompt": "p", "logprobs": 2, "echo": False})
    assert completion.logprobs and completion.top_logprobs == 2
    assert wire.parse_completion(wire.generation_payload(completion, False)) == (completion, False)
    plain = wire.generation_payload(wire.parse_chat(chat())[0], False)
    assert set(plain) == {"model", "messages", "max_tokens", "temperature", "stream"}  # defaults are not sent


@pytest.mark.parametrize(("body", "named"), [
    (chat(temprature=0.2), "'temprature'"),
    (chat(functions=[{"name": "f"}]), "'functions'"),
    (chat(modalities=["audio"]), "'modalities'"),
    ({"model": "m", "prompt": "p", "tools": [WEATHER]}, "'tools'"),
])
def test_an_unknown_field_is_refused_by_name(body: dict[str, Any], named: str) -> None:
    parse = wire.parse_completion if "prompt" in body else wire.parse_chat
    error = refusal(body, parse)
    assert error.kind.name == "unknown_field" and named in error.message


def test_embeddings_take_the_openai_packages_base64_request_and_refuse_dimensions() -> None:
    assert wire.parse_embedding({"model": "e", "input": "x", "encoding_format": "base64"}) == ("e", ["x"])
    for body in ({"model": "e", "input": "x", "dimensions": 3}, {"model": "e", "input": "x", "encoding_format": "f"},
                 {"model": "e", "input": "x", "truncate": True}):
        with pytest.raises(ChainError):
            wire.parse_embedding(body)


def test_fields_the_gateway_reads_itself_pass_only_when_it_says_so() -> None:
    assert refusal(chat(provider={})).kind.name == "unknown_field"
    assert wire.parse_chat(chat(provider={}), extra=frozenset({"provider"}))[0].model == "m"


@pytest.mark.parametrize(("fields", "what"), [
    ({"temperature": 2.5}, "temperature"), ({"top_p": 1.5}, "top_p"), ({"presence_penalty": -3}, "presence_penalty"),
    ({"frequency_penalty": "1"}, "frequency_penalty"), ({"n": 0}, "n"), ({"n": 9}, "n"),
    ({"n": 2, "stream": True}, "n"), ({"logit_bias": {"x": 1}}, "logit_bias"),
    ({"logit_bias": {"5": 101}}, "logit_bias"),
    ({"top_logprobs": 2}, "top_logprobs"), ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"logprobs": 1}, "logprobs"), ({"seed": 2**63}, "seed"), ({"stop": [""]}, "stop"),
    ({"stream_options": {"include": 1}}, "stream_options"), ({"tool_choice": "auto"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tools": [WEATHER, WEATHER]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0]"),
    ({"response_format": {"type": "xml"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": {"type": 7}}}},
     "response_format"),
    ({"response_format": {"type": "json_object"}, "tools": [WEATHER]}, "response_format"),
    ({"max_tokens": 0}, "max_tokens"), ({"max_completion_tokens": 5000}, "max_completion_tokens"),
])
def test_bad_values_are_refused_naming_the_field(fields: dict[str, Any], what: str) -> None:
    assert refusal(chat(**fields)).message.startswith(what)


def test_messages_are_checked_by_role() -> None:
    assert "tool_call_id" in refusal(chat(messages=[{"role": "tool", "content": "x"}])).message
    assert "tool_calls" in refusal(chat(messages=[{"role": "assistant", "tool_calls": []}])).message
    assert "images" in refusal(chat(messages=[{"role": "user", "content": [{"type": "image_url"}]}])).message
    assert refusal(chat(messages=[{"role": "function", "content": "x"}])).message.startswith("messages[0]")


def test_a_strict_schema_must_be_closed_and_fully_required() -> None:
    open_schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    half = {**CITY_SCHEMA, "required": ["city"]}
    nested = {"type": "object", "properties": {"inner": open_schema}, "required": ["inner"],
              "additionalProperties": False}
    for schema in (open_schema, half, nested):
        error = refusal(chat(response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": schema, "strict": True}}))
        assert error.kind.name == "bad_schema" and "additionalProperties" in error.message
        assert wire.parse_chat(chat(response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": schema}}))[0].response_format is not None  # not strict: any JSON Schema
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        deep = {"type": "array", "items": deep}
    assert "deeper" in refusal(chat(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": deep}})).message


def test_answers_carry_choices_tool_calls_and_logprobs() -> None:
    results = [GenerationResult("Paris", 10, 2, logprobs=[TokenLogprob("Par", -0.1, [("Par", -0.1), ("Lon", -2.5)]),
                                                         TokenLogprob("is", -0.01)]),
               GenerationResult("", 10, 5, "tool_calls", [ToolCall("c", "get_weather", '{"city":"Paris"}')])]
    answer = wire.chat_answer("id", "m", results)
    assert answer["usage"] == {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}
    first, second = answer["choices"]
    assert first["logprobs"]["content"][0]["top_logprobs"][1] == {"token": "Lon", "logprob": -2.5,
                                                                   "bytes": list(b"Lon")}
    assert second["message"] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    completion = wire.completion_answer("id", "m", results[:1])
    assert completion["choices"][0]["logprobs"] == {"tokens": ["Par", "is"], "token_logprobs": [-0.1, -0.01],
                                                    "top_logprobs": [{"Par": -0.1, "Lon": -2.5}, {}],
                                                    "text_offset": [0, 3]}


def test_the_cost_added_to_an_answer_comes_off_byte_for_byte() -> None:
    body = orjson.dumps(wire.chat_answer("id", "m", [GenerationResult('{"a": "}}"}', 3, 4)]))
    priced = wire.with_cost(body, 1_234, 12)
    assert priced is not None
    usage = orjson.loads(priced)["usage"]
    assert usage["cost"] == "0.000001246" and usage["cost_grains"] == 1_246
    assert usage["cost_details"] == {"miner_grains": 1_234, "fee_grains": 12} and usage["total_tokens"] == 7
    assert wire.without_cost(priced) == body and wire.without_cost(body) == body
    assert wire.with_cost(orjson.dumps({"usage": {"x": 1}, "model": "m"}), 1, 0) is None  # usage not last: unchanged
    assert wire.mint_text(3 * 10**9) == "3" and wire.mint_text(0) == "0"


def schema_format(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


@pytest.mark.parametrize("schema, named", [
    ({"type": "string", "maxLength": 20_000}, "maxLength"),  # a grammar that crashed llama.cpp (SIGSEGV)
    ({"type": "array", "items": {"type": "string"}, "maxItems": 1_024}, "maxItems"),  # 1,024 nested groups: the same
    ({"type": "string", "pattern": "^(a+)+$"}, "pattern"),  # a regular expression that backtracks for hours
    ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems"),  # no grammar enforces it
    ({"if": {"if": {"if": {"type": "string"}}}}, "keyword if"),
    ({"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}, "refers to itself"),
    ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"items": {"$ref": "#/$defs/a"}}}, "$ref": "#/$defs/a"},
     "refers to itself"),
    ({"$ref": "#/$defs/nowhere"}, "not one of this schema's $defs"),
    ({"type": "object", "properties": {}, "required": 5}, "required"),
    ({"type": "object", "properties": {}, "required": [{}, 1]}, "required"),
])
def test_schemas_no_grammar_can_enforce_or_that_cost_without_bound_are_refused(schema: Any, named: str) -> None:
    error = refusal(chat(response_format=schema_format(schema)))
    assert error.kind.name == "bad_schema" and named in error.message, error.message


def test_a_schema_with_shared_definitions_and_bounded_repeats_is_taken() -> None:
    schema = {"$defs": {"city": {"type": "string", "maxLength": 64}, "pair": {"type": "array", "items": {
        "$ref": "#/$defs/city"}, "minItems": 2, "maxItems": 2}}, "type": "object", "properties": {
        "from": {"$ref": "#/$defs/pair"}, "to": {"$ref": "#/$defs/pair"}}, "required": ["from", "to"],
        "additionalProperties": False}
    assert wire.parse_chat(chat(response_format=schema_format(schema)))[0].response_format is not None


@pytest.mark.parametrize("fields", [{"logit_bias": {"²": 1}}, {"logit_bias": {"١٢٣": 1}},
                                    {"tools": [WEATHER], "tool_choice": {"type": "function",
                                                                         "function": {"name": ["get_weather"]}}}])
def test_odd_values_are_refused_not_crashed_on(fields: dict[str, Any]) -> None:
    assert refusal(chat(**fields)).kind.name == "bad_request"
