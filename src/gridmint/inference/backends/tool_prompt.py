"""How tools and structured answers reach a model that only reads text: the chat as plain messages for the model's
own template, and tool calls read back out of what it wrote.

The format is Hermes' (``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``), which small instruct models
such as SmolLM2 have seen: the tools are listed in a system message, an earlier call is the assistant's text in that
format, and a tool's result is a user turn inside ``<tool_response>`` tags (every chat template knows the user role;
not all know "tool"). Backends that constrain decoding (llama.cpp grammars) force the format; the others are asked
for it and read with ``read_tool_call``.
"""

from __future__ import annotations

import secrets

import orjson

from gridmint.inference.backends.base import Generation, ToolCall

CALL_OPEN = "<tool_call>\n"
CALL_CLOSE = "\n</tool_call>"
TOOLS_INSTRUCTION = ("You may call these functions. To call one, answer with only\n<tool_call>\n"
                     '{"name": <function name>, "arguments": <arguments as a JSON object>}\n</tool_call>\n'
                     "Functions:\n")
JSON_INSTRUCTION = "Answer with JSON only."
SCHEMA_INSTRUCTION = "Answer with JSON only, matching this JSON Schema:\n"
# What the instructions above add to a prompt at most, beside the tools and the schema themselves (metering bounds)
INSTRUCTION_BYTES = len(TOOLS_INSTRUCTION) + len(SCHEMA_INSTRUCTION) + 192  # and a forced call's opening


def call_text(name: str, arguments: str) -> str:
    return f'{CALL_OPEN}{{"name": "{name}", "arguments": {arguments}}}{CALL_CLOSE}'


def render_messages(request: Generation) -> list[dict[str, str]]:
    """The request's chat as ``{role, content}`` messages of system, user and assistant only."""
    assert request.messages is not None
    rendered: list[dict[str, str]] = []
    for message in request.messages:
        if message.get("tool_calls"):
            calls = "\n".join(call_text(c["function"]["name"], c["function"]["arguments"] or "{}")
                              for c in message["tool_calls"])
            rendered.append({"role": "assistant", "content": (message["content"] + "\n" + calls).lstrip("\n")})
        elif message["role"] == "tool":
            rendered.append({"role": "user", "content": f"<tool_response>\n{message['content']}\n</tool_response>"})
        else:
            rendered.append({"role": message["role"], "content": message["content"]})
    instruction = instruction_for(request)
    if instruction:
        if rendered[0]["role"] == "system":
            rendered[0] = {"role": "system", "content": rendered[0]["content"] + "\n\n" + instruction}
        else:
            rendered.insert(0, {"role": "system", "content": instruction})
    return rendered


def instruction_for(request: Generation) -> str:
    """The system text that asks for tool calls or a structured answer ("" when the request asks for neither)."""
    if request.tools and request.tool_choice != "none":
        listed = [{"name": t["function"]["name"], "description": t["function"]["description"],
                   "parameters": t["function"]["parameters"]} for t in request.tools]
        return TOOLS_INSTRUCTION + orjson.dumps(listed).decode()
    if request.response_format is None:
        return ""
    if request.response_format["type"] == "json_object":
        return JSON_INSTRUCTION
    return SCHEMA_INSTRUCTION + orjson.dumps(request.response_format["json_schema"]["schema"]).decode()


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def read_tool_call(text: str, request: Generation) -> ToolCall | None:
    """The call in ``text`` if it is one call, in the format, to one of the request's tools with an object of
    arguments; None when it is anything else (an ordinary answer)."""
    stripped = text.strip()
    if not stripped.startswith(CALL_OPEN.strip()):
        return None
    inner = stripped[len(CALL_OPEN.strip()):].removesuffix(CALL_CLOSE.strip()).strip()
    try:
        call = orjson.loads(inner)
    except orjson.JSONDecodeError:
        return None
    names = {t["function"]["name"] for t in request.tools}
    if not isinstance(call, dict) or call.get("name") not in names or not isinstance(call.get("arguments"), dict):
        return None
    return ToolCall(new_call_id(), call["name"], orjson.dumps(call["arguments"]).decode())


def may_become_call(text: str) -> bool:
    """Whether a stream's text so far may still turn out to be a tool call (it is the format's opening so far)."""
    stripped = text.lstrip()
    opening = CALL_OPEN.strip()
    return stripped.startswith(opening) or opening.startswith(stripped)


def prompt_bytes(request: Generation) -> int:
    """Bytes of everything this module adds to a prompt at most, for a gateway's bound on prompt tokens."""
    extra = 0
    for message in request.messages or ():
        extra += sum(len(call_text(c["function"]["name"], c["function"]["arguments"] or "{}").encode()) + 1
                     for c in message.get("tool_calls", ()))
        extra += len("<tool_response>\n\n</tool_response>") if message["role"] == "tool" else 0
    return extra + len(instruction_for(request).encode()) + (INSTRUCTION_BYTES if request.tools else 0)
