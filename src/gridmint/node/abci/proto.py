"""A small protobuf3 codec for the ABCI messages CometBFT v0.38 exchanges with the app, schema-driven.

A schema maps a field number to ``(name, kind)``; a kind is a scalar (``uint64``, ``int64``, ``int32``, ``uint32``,
``bool``, ``string``, ``bytes``, ``enum``), another schema (an embedded message), or ``("repeated", kind)``.
Decoding skips fields it does not know (as protobuf does), so a newer CometBFT's additions pass through; encoding
leaves out proto3 defaults (0, "", b"", False, empty lists, None), as protobuf's own encoders do, so the bytes match
theirs (the test vectors in tests/node/test_abci_proto.py pin them).

Framing on the socket: each message is ``uvarint(length) || message``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Schema = dict[int, tuple[str, Any]]
Kind = str | Schema | tuple[str, Any]

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_VARINT_KINDS = ("uint64", "int64", "int32", "uint32", "bool", "enum")


class ProtoError(ValueError):
    """The bytes are not a valid message of the expected schema."""


_ONE_BYTE = [bytes((value,)) for value in range(128)]


def encode_uvarint(value: int) -> bytes:
    if 0 <= value < 128:
        return _ONE_BYTE[value]
    if value < 0:
        value += 1 << 64  # two's complement, as protobuf writes negative int64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_uvarint(data: bytes | memoryview, offset: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if offset >= len(data):
            raise ProtoError("truncated varint")
        byte = data[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, offset
        shift += 7
        if shift >= 70:
            raise ProtoError("varint longer than 10 bytes")


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    if bits == 32:
        value &= (1 << 32) - 1
        return value - (1 << 32) if value >= 1 << 31 else value
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(view: memoryview) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, raw value)`` for each field on the wire, in order."""
    offset = 0
    while offset < len(view):
        key, offset = decode_uvarint(view, offset)
        wire = key & 7
        if wire == VARINT:
            value: Any
            value, offset = decode_uvarint(view, offset)
        elif wire == LENGTH:
            length, offset = decode_uvarint(view, offset)
            if offset + length > len(view):
                raise ProtoError("truncated length-delimited field")
            value = view[offset:offset + length]
            offset += length
        elif wire == FIXED64:
            value, offset = view[offset:offset + 8], offset + 8
        elif wire == FIXED32:
            value, offset = view[offset:offset + 4], offset + 4
        else:
            raise ProtoError(f"unsupported wire type {wire}")
        yield key >> 3, wire, value


def decode(data: bytes | memoryview, schema: Schema) -> dict[str, Any]:
    """The fields of ``schema`` found in ``data``; missing fields take their proto3 default."""
    plan = _plan(schema)
    out = dict(plan.defaults)
    for name in plan.repeated:
        out[name] = []
    for number, wire, value in _fields(memoryview(data)):
        field = schema.get(number)
        if field is None:
            continue
        name, kind = field
        if isinstance(kind, tuple) and kind[0] == "repeated":
            out[name].append(_value(kind[1], value, wire))
        else:
            out[name] = _value(kind, value, wire)
    return out


def decode_oneof(data: bytes | memoryview, schema: Schema) -> tuple[str, dict[str, Any]]:
    """A message that is one ``oneof`` of embedded messages (ABCI's Request): the case that is set and its fields.
    As in protobuf, the last case on the wire wins; unknown cases are skipped."""
    found: tuple[str, dict[str, Any]] | None = None
    for number, wire, value in _fields(memoryview(data)):
        field = schema.get(number)
        if field is not None:
            found = (field[0], _value(field[1], value, wire))
    if found is None:
        raise ProtoError("no known case of the oneof is set")
    return found


def _value(kind: Kind, value: Any, wire: int) -> Any:
    if isinstance(kind, dict):
        if wire != LENGTH:
            raise ProtoError("an embedded message must be length-delimited")
        return decode(value, kind)
    if kind in _VARINT_KINDS:
        if wire != VARINT:
            raise ProtoError(f"a {kind} field must be a varint")
        if kind == "bool":
            return bool(value)
        if kind == "int64":
            return _signed(value, 64)
        if kind == "int32":
            return _signed(value, 32)
        return value
    if wire != LENGTH:
        raise ProtoError(f"a {kind} field must be length-delimited")
    if kind == "string":
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            raise ProtoError("a string field is not UTF-8") from None
    return bytes(value)


_WRITE_MESSAGE, _WRITE_VARINT, _WRITE_STRING, _WRITE_BYTES = range(4)


@dataclass(frozen=True)
class _Plan:
    """A schema worked out once: for encoding, per field in number order, (name, wire key bytes, how to write it,
    whether it repeats, the embedded schema); for decoding, the singular fields' proto3 defaults and the repeated
    fields' names (each decode gets fresh lists)."""
    schema: Schema  # held, so that the schema's id is never reused while its plan is cached
    fields: list[tuple[str, bytes, int, bool, Any]]
    defaults: dict[str, Any]
    repeated: tuple[str, ...]
    cases: dict[str, tuple[bytes, Schema]]  # embedded-message fields by name: the cases if the message is a oneof


_PLANS: dict[int, _Plan] = {}
_SCALAR_DEFAULTS: dict[str, Any] = {"string": "", "bytes": b"", "bool": False}  # every other scalar: 0


def _plan(schema: Schema) -> _Plan:
    plan = _PLANS.get(id(schema))
    if plan is not None and plan.schema is schema:
        return plan
    fields: list[tuple[str, bytes, int, bool, Any]] = []
    defaults: dict[str, Any] = {}
    repeated: list[str] = []
    for number, (name, kind) in sorted(schema.items()):
        repeats = isinstance(kind, tuple) and kind[0] == "repeated"
        item = kind[1] if repeats else kind
        if repeats:
            repeated.append(name)
        else:
            defaults[name] = None if isinstance(item, dict) else _SCALAR_DEFAULTS.get(item, 0)
        if isinstance(item, dict):
            fields.append((name, encode_uvarint(number << 3 | LENGTH), _WRITE_MESSAGE, repeats, item))
        elif item in _VARINT_KINDS:
            fields.append((name, encode_uvarint(number << 3 | VARINT), _WRITE_VARINT, repeats, None))
        else:
            fields.append((name, encode_uvarint(number << 3 | LENGTH),
                           _WRITE_STRING if item == "string" else _WRITE_BYTES, repeats, None))
    cases = {name: (key, embedded) for name, key, how, repeats, embedded in fields
             if how == _WRITE_MESSAGE and not repeats}
    plan = _PLANS[id(schema)] = _Plan(schema, fields, defaults, tuple(repeated), cases)
    return plan


def encode(message: dict[str, Any], schema: Schema) -> bytes:
    out: list[bytes] = []
    for name, key, how, repeated, embedded in _plan(schema).fields:
        value = message.get(name)
        if value is None:
            continue
        for item in (value if repeated else (value,)):
            if how == _WRITE_MESSAGE:
                body = encode(item, embedded)
                out += (key, encode_uvarint(len(body)), body)
            elif how == _WRITE_VARINT:
                number = int(item)
                if number or repeated:  # proto3 leaves a singular default out
                    out += (key, encode_uvarint(number))
            else:
                raw = item.encode() if how == _WRITE_STRING else bytes(item)
                if raw or repeated:
                    out += (key, encode_uvarint(len(raw)), raw)
    return b"".join(out)


def encode_oneof(case: str, message: dict[str, Any], schema: Schema) -> bytes:
    """A message that is one ``oneof`` of embedded messages (ABCI's Response) with ``case`` set to ``message``."""
    key, embedded = _plan(schema).cases[case]
    body = encode(message, embedded)
    return b"".join((key, encode_uvarint(len(body)), body))


def frame(payload: bytes) -> bytes:
    return encode_uvarint(len(payload)) + payload
