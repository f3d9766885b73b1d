"""Structured answers: the JSON schemas a request may ask for, and whether an answer is what it asked for.

A request's schema (``response_format.json_schema.schema``, a tool's ``parameters``) is checked where it is parsed
(``wire``): a JSON Schema of bounded size and depth, and, when ``strict``, OpenAI's strict subset: every object lists
all its properties as required and allows no others. Only keywords a miner's grammar enforces while it decodes are
taken (``KEYWORDS``), with their repeat counts bounded (``MAX_REPEAT``) and ``$ref`` pointing into ``$defs`` without a
cycle: a keyword no grammar enforces (``pattern``, ``uniqueItems``, ``if``…) would make every honest miner's answer
fail the gateway's check, and a regular expression or an unbounded repeat costs the checker or the grammar
compiler without bound (a ``maxLength`` of 20,000 made a 100 KB grammar that crashed llama.cpp).

An answer is then checked by whoever pays for it or scores it (the gateway before it bills, the validator before it
scores): JSON that parses and, for ``json_schema``, that the schema accepts (``jsonschema``, Draft 2020-12).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson

from gridmint.chain.errors import register

BAD_SCHEMA = register("inference", 3, "bad_schema")

MAX_DEPTH = 32
MAX_REPEAT = 256  # the most a schema's minLength/maxLength/minItems/maxItems may ask (llama.cpp crashed at 1,024)
NESTED = ("properties", "$defs", "definitions")
LISTED = ("anyOf", "oneOf", "allOf", "prefixItems")
VALUES = ("$defs", "definitions", "enum", "const", "default", "examples")  # data or definitions, not subschemas
REPEATS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "const", "anyOf",
    "oneOf", "allOf", "$defs", "definitions", "$ref", "description", "title", "default", "examples", "$schema", "$id",
    "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", *REPEATS,
})


def check_schema(schema: Any, what: str, strict: bool, max_bytes: int) -> None:
    """Refuse (``bad_schema``) a schema that is not a JSON Schema object of at most ``max_bytes``, nests deeper
    than ``MAX_DEPTH``, or, when ``strict``, leaves an object open."""
    if not isinstance(schema, dict):
        raise BAD_SCHEMA(f"{what}: expected a JSON Schema object")
    try:
        size = len(orjson.dumps(schema))
    except (TypeError, orjson.JSONEncodeError):
        raise BAD_SCHEMA(f"{what}: expected a JSON Schema object") from None
    if size > max_bytes:
        raise BAD_SCHEMA(f"{what}: {size} bytes; at most {max_bytes}")
    try:
        _walk(schema, what, strict, 0)
        _check_refs(schema, what)
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise BAD_SCHEMA(f"{what}: not a JSON Schema ({error.message[:200]})") from None
    except (RecursionError, TypeError, ValueError, KeyError, AttributeError) as error:  # a shape no rule foresaw
        raise BAD_SCHEMA(f"{what}: not a JSON Schema this gateway takes ({type(error).__name__})") from None


def _walk(node: Any, what: str, strict: bool, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BAD_SCHEMA(f"{what}: nested deeper than {MAX_DEPTH}")
    if not isinstance(node, dict):
        return
    unknown = sorted(str(key)[:40] for key in node if key not in KEYWORDS)
    if unknown:
        raise BAD_SCHEMA(f"{what}: the keyword {unknown[0]} is not taken: a miner's grammar cannot enforce it while it "
                         f"decodes (taken: {', '.join(sorted(KEYWORDS))})")
    for key in REPEATS:
        value = node.get(key)
        if key in node and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_REPEAT):
            raise BAD_SCHEMA(f"{what}.{key}: expected a whole number from 0 to {MAX_REPEAT}")
    required = node.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise BAD_SCHEMA(f"{what}.required: expected a list of property names")
    if strict and (node.get("type") == "object" or "properties" in node):
        properties = node.get("properties", {})
        if node.get("additionalProperties") is not False or not isinstance(properties, dict) or \
                sorted(required) != sorted(properties):
            raise BAD_SCHEMA(f"{what}: a strict schema's objects set additionalProperties: false and list every "
                             "property in required")
    for key in NESTED:
        children = node.get(key)
        if isinstance(children, dict):
            for name, child in children.items():
                _walk(child, f"{what}.{key}.{name}", strict, depth + 1)
    for key in LISTED:
        children = node.get(key)
        if isinstance(children, list):
            for index, child in enumerate(children):
                _walk(child, f"{what}.{key}[{index}]", strict, depth + 1)
    for key in ("items", "additionalProperties", "not"):
        _walk(node.get(key), f"{what}.{key}", strict, depth + 1)


def _check_refs(schema: dict[str, Any], what: str) -> None:
    """Every ``$ref`` names a definition of this schema (``#/$defs/x`` or ``#/definitions/x``), and no definition
    reaches itself: a recursive schema makes a grammar, and a check, without end."""
    definitions: dict[str, Any] = {}
    for section in ("$defs", "definitions"):
        for name, child in (schema.get(section) or {}).items():
            definitions[f"#/{section}/{name}"] = child

    def refs_in(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [ref for key, child in node.items() if key not in VALUES for ref in refs_in(child)]
        if isinstance(node, list):
            return [ref for child in node for ref in refs_in(child)]
        return []

    for ref in refs_in(schema):
        if not isinstance(ref, str) or ref not in definitions:
            raise BAD_SCHEMA(f"{what}: $ref {str(ref)[:80]!r} is not one of this schema's $defs")
    children = {name: refs_in(child) for name, child in definitions.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done (no cycle through it)
    for start in definitions:
        if start in state:
            continue
        state[start] = 1
        path = [(start, iter(children[start]))]
        while path:
            name, pending = path[-1]
            following = next(pending, None)
            if following is None:
                state[name] = 2
                path.pop()
            elif state.get(following) == 1:
                raise BAD_SCHEMA(f"{what}: {following} refers to itself (recursive schemas are not taken)")
            elif following not in state:
                state[following] = 1
                path.append((following, iter(children[following])))


def answer_problem(text: str, response_format: dict[str, Any] | None) -> str | None:
    """Why ``text`` is not the structured answer ``response_format`` asked for, or None when it is (or when the
    request asked for plain text)."""
    if response_format is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "the answer is not JSON"
    if response_format["type"] == "json_object":
        return None if isinstance(value, dict) else "the answer is JSON but not an object"
    errors = jsonschema.Draft202012Validator(response_format["json_schema"]["schema"]).iter_errors(value)
    error = next(iter(errors), None)
    return None if error is None else f"the answer does not match its schema: {error.message[:200]}"
