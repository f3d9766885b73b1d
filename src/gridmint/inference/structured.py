"""Structured answers: the JSON schemas a request may ask for, and whether an answer is what it asked for.

A request's schema (``response_format.json_schema.schema``, a tool's ``parameters``) is checked where it is parsed
(``wire``): a JSON Schema of bounded size and depth, and, when ``strict``, OpenAI's strict subset: every object lists
all its properties as required and allows no others. An answer is then checked by whoever pays for it or scores
it (the gateway before it bills, the validator before it scores): JSON that parses and, for ``json_schema``, that
the schema accepts (``jsonschema``, Draft 2020-12).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson

from gridmint.chain.errors import register

BAD_SCHEMA = register("inference", 3, "bad_schema")

MAX_DEPTH = 32
NESTED = ("properties", "$defs", "definitions", "patternProperties")
LISTED = ("anyOf", "oneOf", "allOf", "prefixItems")


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
    _walk(schema, what, strict, 0)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise BAD_SCHEMA(f"{what}: not a JSON Schema ({error.message[:200]})") from None


def _walk(node: Any, what: str, strict: bool, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BAD_SCHEMA(f"{what}: nested deeper than {MAX_DEPTH}")
    if not isinstance(node, dict):
        return
    if strict and (node.get("type") == "object" or "properties" in node):
        properties = node.get("properties", {})
        if node.get("additionalProperties") is not False or not isinstance(properties, dict) or \
                sorted(node.get("required", [])) != sorted(properties):
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
