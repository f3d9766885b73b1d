"""OpenAI-shaped requests and answers: parsing with bounds, and the JSON the miner sends back.

One parser for both sides: the gateway reads a consumer's request with it and forwards only what it read
(``generation_payload``), and the miner reads that back to the same ``Generation``. Every field OpenAI documents for
``/v1/chat/completions`` and ``/v1/completions`` is either read and checked here, accepted and dropped where
OpenAI's own answer does not depend on it (``IGNORED``: ``user``, ``metadata``, ...), or refused with a 400 that
names it; any other field is refused the same way, so a typo (``temprature``) is never silently ignored and nothing
unread is forwarded to a miner. Defaults are OpenAI's (temperature 1, top_p 1, n 1).
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from gridmint.chain.errors import register
from gridmint.chain.units import GRAINS_PER_MINT, MINT_DECIMALS
from gridmint.inference.backends.base import (
    EmbeddingResult,
    Generation,
    GenerationResult,
    StreamPiece,
    TokenLogprob,
    ToolCall,
)
from gridmint.inference.structured import check_schema

BAD_REQUEST = register("inference", 1, "bad_request")
UNKNOWN_FIELD = register("inference", 2, "unknown_field")

MAX_MESSAGES = 256
MAX_TEXT_BYTES = 64 * 1024
MAX_TOKENS = 4_096
MAX_EMBED_INPUTS = 256
MAX_N = 8
MAX_TOP_LOGPROBS = 20
MAX_COMPLETION_LOGPROBS = 5  # /v1/completions' ``logprobs`` is a count, at most 5 (OpenAI)
TOKEN_ID = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit also takes "²" and "١٢٣"
MAX_LOGIT_BIAS = 300
MAX_TOOLS = 64
MAX_TOOL_CALLS = 16
MAX_SCHEMA_BYTES = 16 * 1024
DEFAULT_MAX_TOKENS = 128
ROLES = ("system", "developer", "user", "assistant", "tool")
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

GENERATION_FIELDS = {"model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "presence_penalty",
                     "frequency_penalty", "logit_bias", "seed", "stop", "n", "stream", "stream_options", "logprobs"}
CHAT_FIELDS = GENERATION_FIELDS | {"messages", "top_logprobs", "response_format", "tools", "tool_choice",
                                   "parallel_tool_calls"}
COMPLETION_FIELDS = GENERATION_FIELDS | {"prompt", "echo", "suffix", "best_of"}
# Accepted and dropped: they label or store a request at OpenAI, and its answer is the same without them.
IGNORED = {"user", "metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier"}


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value.encode()) > MAX_TEXT_BYTES:
        raise BAD_REQUEST(f"{what}: expected text of at most {MAX_TEXT_BYTES} bytes")
    return value


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise BAD_REQUEST(f"{name}: expected a number from {low:g} to {high:g}")
    return float(value)


def _whole(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BAD_REQUEST(f"{name}: expected a whole number from {low} to {high}")
    return value


def check_fields(body: dict[str, Any], known: set[str], extra: frozenset[str] = frozenset()) -> None:
    """Refuse the first field that is neither read (``known``, ``extra``) nor one OpenAI's answer ignores."""
    for name in body:
        if name not in known and name not in IGNORED and name not in extra:
            raise UNKNOWN_FIELD(f"unknown field '{str(name)[:64]}': this network reads "
                                f"{', '.join(sorted(known | extra))} (and ignores {', '.join(sorted(IGNORED))})")


def _common(body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise BAD_REQUEST("model: expected the name of a model this miner serves")
    limit = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _whole(body, limit, DEFAULT_MAX_TOKENS, 1, MAX_TOKENS)
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not -2**63 <= seed < 2**63):
        raise BAD_REQUEST("seed: expected a whole number (64-bit)")
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and 0 < len(s) <= 64 for s in stop):
        raise BAD_REQUEST("stop: expected up to 4 strings of 1 to 64 characters")
    bias = body.get("logit_bias") or {}
    if not isinstance(bias, dict) or len(bias) > MAX_LOGIT_BIAS:
        raise BAD_REQUEST(f"logit_bias: expected an object of at most {MAX_LOGIT_BIAS} token ids")
    logit_bias = {}
    for token, value in bias.items():
        if not TOKEN_ID.fullmatch(str(token)) or isinstance(value, bool) or \
                not isinstance(value, (int, float)) or not -100 <= value <= 100:
            raise BAD_REQUEST("logit_bias: expected token ids (as text) mapped to numbers from -100 to 100")
        logit_bias[int(token)] = float(value)
    stream_options = body.get("stream_options")
    if stream_options is not None and (not isinstance(stream_options, dict) or set(stream_options) -
                                       {"include_usage", "include_obfuscation"}):
        raise BAD_REQUEST("stream_options: expected {include_usage: true|false}")
    n = _whole(body, "n", 1, 1, MAX_N)
    if n > 1 and body.get("stream"):
        raise BAD_REQUEST(f"n: {n} choices are answered without streaming only; send stream: false or n: 1")
    return {"model": model, "max_tokens": max_tokens, "temperature": _number(body, "temperature", 1.0, 0, 2),
            "top_p": _number(body, "top_p", 1.0, 0, 1), "seed": seed, "stop": stop, "n": n,
            "presence_penalty": _number(body, "presence_penalty", 0.0, -2, 2),
            "frequency_penalty": _number(body, "frequency_penalty", 0.0, -2, 2), "logit_bias": logit_bias}


def include_usage(body: dict[str, Any]) -> bool:
    """Whether a stream should end with a chunk of usage (``stream_options.include_usage``, checked by the parsers)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _content(value: Any, what: str) -> str:
    """A message's content: text, or OpenAI's list of text parts (joined)."""
    if isinstance(value, list):
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in value):
            raise BAD_REQUEST(f"{what}: expected text or a list of {{type: text, text}} parts (no images or audio)")
        value = "".join(p["text"] for p in value)
    return _text(value, what)


def _tool_calls(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_TOOL_CALLS:
        raise BAD_REQUEST(f"{what}: expected 1 to {MAX_TOOL_CALLS} tool calls")
    calls = []
    for index, call in enumerate(value):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function" or \
                not isinstance(call.get("id"), str) or not 0 < len(call["id"]) <= 128 or \
                not isinstance(function.get("name"), str) or not NAME.fullmatch(function["name"]):
            raise BAD_REQUEST(f"{what}[{index}]: expected {{id, type: function, function: {{name, arguments}}}}")
        calls.append({"id": call["id"], "type": "function", "function": {
            "name": function["name"], "arguments": _text(function.get("arguments", ""), f"{what}[{index}].arguments")}})
    return calls


def _message(message: Any, index: int) -> dict[str, Any]:
    what = f"messages[{index}]"
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        raise BAD_REQUEST(f"{what}: expected {{role: {'|'.join(ROLES)}, content: text}}")
    role = "system" if message["role"] == "developer" else message["role"]
    content = message.get("content")
    cleaned: dict[str, Any] = {"role": role}
    if role == "assistant" and message.get("tool_calls") is not None:
        cleaned["content"] = "" if content is None else _content(content, what)
        cleaned["tool_calls"] = _tool_calls(message["tool_calls"], f"{what}.tool_calls")
        return cleaned
    cleaned["content"] = _content("" if content is None else content, what)
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not 0 < len(call_id) <= 128:
            raise BAD_REQUEST(f"{what}: a tool message names the call it answers (tool_call_id)")
        cleaned["tool_call_id"] = call_id
    return cleaned


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    raw = body.get("tools")
    tools: list[dict[str, Any]] = []
    if raw is not None:
        if not isinstance(raw, list) or len(raw) > MAX_TOOLS:
            raise BAD_REQUEST(f"tools: expected a list of at most {MAX_TOOLS} functions")
        for index, tool in enumerate(raw):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or tool.get("type") != "function" or \
                    not isinstance(function.get("name"), str) or not NAME.fullmatch(function["name"]):
                raise BAD_REQUEST(f"tools[{index}]: expected {{type: function, function: {{name (letters, digits, "
                                  "_ and -, at most 64), description, parameters}}")
            parameters = function.get("parameters", {"type": "object", "properties": {}})
            check_schema(parameters, f"tools[{index}].function.parameters", bool(function.get("strict")),
                         MAX_SCHEMA_BYTES)
            tools.append({"type": "function", "function": {
                "name": function["name"], "description": _text(function.get("description", ""),
                                                               f"tools[{index}].function.description"),
                "parameters": parameters}})
    if len({t["function"]["name"] for t in tools}) != len(tools):
        raise BAD_REQUEST("tools: each function needs a name of its own")
    choice = body.get("tool_choice")
    if choice is None:
        return tools, "auto" if tools else "none"
    if not tools:
        raise BAD_REQUEST("tool_choice: only with tools")
    if choice in ("none", "auto", "required"):
        return tools, str(choice)
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) and choice.get("type") == "function" \
        and isinstance(choice.get("function"), dict) else None
    if not isinstance(name, str) or name not in {t["function"]["name"] for t in tools}:
        raise BAD_REQUEST("tool_choice: expected none, auto, required or {type: function, function: {name}} naming "
                          "one of the tools")
    return tools, str(name)


def _response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    raw = body.get("response_format")
    if raw is None or raw == {"type": "text"}:
        return None
    if raw == {"type": "json_object"}:
        return {"type": "json_object"}
    spec = raw.get("json_schema") if isinstance(raw, dict) and raw.get("type") == "json_schema" else None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not NAME.fullmatch(spec["name"]) or \
            set(spec) - {"name", "schema", "strict", "description"}:
        raise BAD_REQUEST("response_format: expected {type: text}, {type: json_object} or {type: json_schema, "
                          "json_schema: {name, schema, strict}}")
    strict = spec.get("strict") is True
    schema = spec.get("schema", {})
    check_schema(schema, "response_format.json_schema.schema", strict, MAX_SCHEMA_BYTES)
    return {"type": "json_schema", "json_schema": {"name": spec["name"], "schema": schema, "strict": strict}}


def parse_chat(body: Any, extra: frozenset[str] = frozenset()) -> tuple[Generation, bool]:
    """``extra``: fields the caller reads itself (a gateway's ``provider`` and ``models``)."""
    if not isinstance(body, dict):
        raise BAD_REQUEST("expected a JSON object")
    check_fields(body, CHAT_FIELDS, extra)
    messages = body.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        raise BAD_REQUEST(f"messages: expected 1 to {MAX_MESSAGES} messages")
    cleaned = [_message(message, index) for index, message in enumerate(messages)]
    logprobs = body.get("logprobs") or False
    if not isinstance(logprobs, bool):
        raise BAD_REQUEST("logprobs: expected true or false")
    top_logprobs = _whole(body, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS)
    if top_logprobs and not logprobs:
        raise BAD_REQUEST("top_logprobs: only with logprobs: true")
    if not isinstance(body.get("parallel_tool_calls", True), bool):
        raise BAD_REQUEST("parallel_tool_calls: expected true or false")
    tools, tool_choice = _tools(body)
    response_format = _response_format(body)
    if response_format is not None and tool_choice != "none":
        raise BAD_REQUEST("response_format: a structured answer and tool calls in one request are not served; send "
                          "tool_choice: none or no response_format")
    return Generation(messages=cleaned, logprobs=logprobs, top_logprobs=top_logprobs, tools=tools,
                      tool_choice=tool_choice, response_format=response_format,
                      **_common(body)), bool(body.get("stream", False))


def parse_completion(body: Any, extra: frozenset[str] = frozenset()) -> tuple[Generation, bool]:
    if not isinstance(body, dict):
        raise BAD_REQUEST("expected a JSON object")
    check_fields(body, COMPLETION_FIELDS, extra)
    if body.get("echo") or body.get("suffix") is not None or body.get("best_of") not in (None, 1):
        raise BAD_REQUEST("echo, suffix and best_of are not served: send them unset (best_of 1)")
    top = body.get("logprobs")
    if top is not None and (not isinstance(top, int) or isinstance(top, bool) or
                            not 0 <= top <= MAX_COMPLETION_LOGPROBS):
        raise BAD_REQUEST(f"logprobs: expected how many likely tokens to list, 0 to {MAX_COMPLETION_LOGPROBS}")
    return Generation(prompt=_text(body.get("prompt"), "prompt"), logprobs=top is not None, top_logprobs=top or 0,
                      **_common(body)), bool(body.get("stream", False))


def parse_embedding(body: Any, extra: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
    if not isinstance(body, dict):
        raise BAD_REQUEST("expected a JSON object")
    check_fields(body, {"model", "input", "encoding_format", "dimensions"}, extra)
    # Vectors are answered as numbers. The openai package asks for base64 unless told otherwise and reads numbers
    # as well, so base64 is accepted (and answered as numbers) rather than refused.
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise BAD_REQUEST("encoding_format: expected float (or base64, answered as float)")
    if body.get("dimensions") is not None:
        raise BAD_REQUEST("dimensions: each model answers with its own; send it unset")
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
    """A parsed chat or completion request as JSON again, with nothing the parsers did not read and defaults left
    out: what a gateway forwards to a miner (``parse_chat``/``parse_completion`` read it back as the same request)."""
    payload: dict[str, Any] = {"model": request.model, "max_tokens": request.max_tokens,
                               "temperature": request.temperature, "stream": stream}
    if request.messages is not None:
        payload["messages"] = request.messages
    else:
        payload["prompt"] = request.prompt
    defaults = Generation(model=request.model)
    for name in ("top_p", "presence_penalty", "frequency_penalty", "seed", "stop", "n", "response_format"):
        if getattr(request, name) != getattr(defaults, name):
            payload[name] = getattr(request, name)
    if request.logit_bias:
        payload["logit_bias"] = {str(token): bias for token, bias in request.logit_bias.items()}
    if request.logprobs:
        if request.messages is None:
            payload["logprobs"] = request.top_logprobs
        else:
            payload["logprobs"], payload["top_logprobs"] = True, request.top_logprobs
    if request.tools:
        payload["tools"] = request.tools
        payload["tool_choice"] = request.tool_choice if request.tool_choice in ("none", "auto", "required") else \
            {"type": "function", "function": {"name": request.tool_choice}}
    return payload


def embedding_payload(model: str, inputs: list[str]) -> dict[str, Any]:
    """A parsed embedding request as JSON again (``parse_embedding`` reads it back the same)."""
    return {"model": model, "input": inputs}


# --- answers --------------------------------------------------------------------------------------------------


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def _chat_logprobs(logprobs: list[TokenLogprob] | None) -> dict[str, Any] | None:
    if logprobs is None:
        return None
    return {"content": [{"token": t.token, "logprob": t.logprob, "bytes": list(t.token.encode()),
                         "top_logprobs": [{"token": s, "logprob": p, "bytes": list(s.encode())} for s, p in t.top]}
                        for t in logprobs], "refusal": None}


def _completion_logprobs(logprobs: list[TokenLogprob] | None) -> dict[str, Any] | None:
    if logprobs is None:
        return None
    offsets, at = [], 0
    for t in logprobs:
        offsets.append(at)
        at += len(t.token)
    return {"tokens": [t.token for t in logprobs], "token_logprobs": [t.logprob for t in logprobs],
            "top_logprobs": [dict(t.top) for t in logprobs], "text_offset": offsets}


def _usage_of(results: list[GenerationResult]) -> dict[str, int]:
    """n choices read one prompt: it is counted once, as OpenAI does; their completions add up."""
    return _usage(results[0].prompt_tokens, sum(r.completion_tokens for r in results))


def chat_answer(request_id: str, model: str, results: list[GenerationResult]) -> dict[str, Any]:
    choices = []
    for index, result in enumerate(results):
        message: dict[str, Any] = {"role": "assistant", "content": result.text}
        if result.tool_calls:
            message["content"] = result.text or None
            message["tool_calls"] = [_tool_call_json(call) for call in result.tool_calls]
        choices.append({"index": index, "message": message, "logprobs": _chat_logprobs(result.logprobs),
                        "finish_reason": result.finish_reason})
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": _usage_of(results)}


def completion_answer(request_id: str, model: str, results: list[GenerationResult]) -> dict[str, Any]:
    return {"id": request_id, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": index, "text": result.text, "logprobs": _completion_logprobs(result.logprobs),
                         "finish_reason": result.finish_reason} for index, result in enumerate(results)],
            "usage": _usage_of(results)}


def chunk(request_id: str, model: str, piece: StreamPiece, chat: bool, first: bool = False) -> dict[str, Any]:
    """One streamed event; ``first``: the stream's first chunk, which names the role (chat)."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": piece.finish_reason}
    if chat:
        delta: dict[str, Any] = {"role": "assistant"} if first else {}
        if piece.tool_call is not None:
            delta["tool_calls"] = [{"index": 0, **_tool_call_json(piece.tool_call)}]
        elif piece.tool_arguments:
            delta["tool_calls"] = [{"index": 0, "function": {"arguments": piece.tool_arguments}}]
        else:
            delta["content"] = piece.text
        choice["delta"] = delta
        choice["logprobs"] = _chat_logprobs(piece.logprobs)
    else:
        choice["text"] = piece.text
        choice["logprobs"] = _completion_logprobs(piece.logprobs)
    payload: dict[str, Any] = {"id": request_id, "object": "chat.completion.chunk" if chat else "text_completion",
                               "created": int(time.time()), "model": model, "choices": [choice]}
    if piece.finish_reason is not None:
        payload["usage"] = _usage(piece.prompt_tokens, piece.completion_tokens)
    return payload


def embedding_answer(model: str, result: EmbeddingResult) -> dict[str, Any]:
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(result.vectors)],
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}}


def models_answer(models: list[str], capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    """``capabilities``: what the backend serves besides plain text (``Backend.capabilities``), with every model."""
    return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "gridmint-miner",
                                        **({"capabilities": capabilities} if capabilities else {})} for m in models]}


def error_body(message: str, code: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}


# --- cost -----------------------------------------------------------------------------------------------------
# A gateway adds what a request cost to the usage of the miner's signed answer. The miner's bytes stay a prefix of
# what the consumer gets, and the addition is one anchored suffix, so anyone can take it off again and check the
# miner's signature over the rest (``without_cost``; a validator probing through a gateway does).

_COST_SUFFIX = re.compile(rb',"cost":"[0-9.]+","cost_grains":[0-9]+,"cost_details":\{"miner_grains":[0-9]+,'
                          rb'"fee_grains":[0-9]+\}\}\}\Z')


def mint_text(grains: int) -> str:
    """Grains as MINT, exactly (nine decimals, trailing zeros dropped)."""
    whole, frac = divmod(grains, GRAINS_PER_MINT)
    return f"{whole}.{frac:0{MINT_DECIMALS}d}".rstrip("0").rstrip(".")


def usage_cost(miner_grains: int, fee_grains: int) -> dict[str, Any]:
    """The fields a gateway adds to ``usage``: the total in MINT and grains, and its parts."""
    return {"cost": mint_text(miner_grains + fee_grains), "cost_grains": miner_grains + fee_grains,
            "cost_details": {"miner_grains": miner_grains, "fee_grains": fee_grains}}


def with_cost(body: bytes, miner_grains: int, fee_grains: int) -> bytes | None:
    """The answer with the cost in its ``usage``, or None where ``usage`` is not the answer's last field (a miner
    that orders its JSON otherwise: its answer goes out unchanged, the cost in headers only)."""
    if not body.endswith(b"}}"):
        return None
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict) or not answer or list(answer)[-1] != "usage" or \
            not isinstance(answer["usage"], dict) or not answer["usage"] or "cost" in answer["usage"]:
        return None
    added = orjson.dumps(usage_cost(miner_grains, fee_grains))  # {"cost":...}: its inside goes after usage's fields
    return body[:-2] + b"," + added[1:-1] + b"}}"


def without_cost(body: bytes) -> bytes:
    """The miner's own bytes of an answer a gateway added the cost to (the body unchanged if it added none)."""
    found = _COST_SUFFIX.search(body)
    return body if found is None else body[:found.start()] + b"}}"
