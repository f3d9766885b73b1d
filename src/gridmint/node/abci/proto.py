"""A small protobuf3 codec for the ABCI messages CometBFT v0.38 exchanges with the app, schema-driven.

A schema maps a field number to ``(name, kind)``; a kind is a scalar (``uint64``, ``int64``, ``int32``, ``uint32``,
``bool``, ``string``, ``bytes``, ``enum``), another schema (an embedded message), or ``("repeated", kind)``.
Decoding skips fields it does not know (as protobuf does), so a newer CometBFT's additions pass through; encoding
leaves out proto3 defaults (0, "", b"", False, empty lists, None), as protobuf's own encoders do, so the bytes match
theirs (the test vectors in tests/node/test_abci_proto.py pin them).

Framing on the socket: each message is ``uvarint(length) || message``.
"""

from __future__ import annotations

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


def decode(data: bytes | memoryview, schema: Schema) -> dict[str, Any]:
    """The fields of ``schema`` found in ``data``; missing fields take their proto3 default."""
    defaults, repeated = _defaults(schema)
    out = dict(defaults)
    for name in repeated:
        out[name] = []
    offset = 0
    view = memoryview(data)
    while offset < len(view):
        key, offset = decode_uvarint(view, offset)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            raw, offset = decode_uvarint(view, offset)
            value: Any = raw
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
        field = schema.get(number)
        if field is None:
            continue
        name, kind = field
        if isinstance(kind, tuple) and kind[0] == "repeated":
            out[name].append(_value(kind[1], value, wire))
        else:
            out[name] = _value(kind, value, wire)
    return out


# Per schema, its singular fields' proto3 defaults and its repeated fields' names (each decode gets fresh lists).
# Entries hold their schema, so an id is never reused while cached.
_DEFAULTS: dict[int, tuple[Schema, dict[str, Any], tuple[str, ...]]] = {}


def _defaults(schema: Schema) -> tuple[dict[str, Any], tuple[str, ...]]:
    entry = _DEFAULTS.get(id(schema))
    if entry is None or entry[0] is not schema:
        singular = {name: None if isinstance(kind, dict) else {"string": "", "bytes": b"", "bool": False}.get(kind, 0)
                    for name, kind in schema.values() if not isinstance(kind, tuple)}
        repeated = tuple(name for name, kind in schema.values() if isinstance(kind, tuple))
        entry = _DEFAULTS[id(schema)] = (schema, singular, repeated)
    return entry[1], entry[2]


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


_MESSAGE, _VARINT, _STRING, _BYTES = range(4)
# A schema compiled for encoding: per field in number order, (name, wire key bytes, how to write it, whether it
# repeats, the embedded schema). Entries hold their schema, so an id is never reused while cached.
_Compiled = list[tuple[str, bytes, int, bool, Any]]
_COMPILED: dict[int, tuple[Schema, _Compiled]] = {}


def _compiled(schema: Schema) -> _Compiled:
    entry = _COMPILED.get(id(schema))
    if entry is None or entry[0] is not schema:
        fields: _Compiled = []
        for number, (name, kind) in sorted(schema.items()):
            repeated = isinstance(kind, tuple) and kind[0] == "repeated"
            item = kind[1] if repeated else kind
            if isinstance(item, dict):
                fields.append((name, encode_uvarint(number << 3 | LENGTH), _MESSAGE, repeated, item))
            elif item in _VARINT_KINDS:
                fields.append((name, encode_uvarint(number << 3 | VARINT), _VARINT, repeated, None))
            else:
                fields.append((name, encode_uvarint(number << 3 | LENGTH), _STRING if item == "string" else _BYTES,
                               repeated, None))
        entry = _COMPILED[id(schema)] = (schema, fields)
    return entry[1]


def encode(message: dict[str, Any], schema: Schema) -> bytes:
    out: list[bytes] = []
    for name, key, how, repeated, embedded in _compiled(schema):
        value = message.get(name)
        if value is None:
            continue
        for item in (value if repeated else (value,)):
            if how == _MESSAGE:
                body = encode(item, embedded)
                out += (key, encode_uvarint(len(body)), body)
            elif how == _VARINT:
                number = int(item)
                if number or repeated:  # proto3 leaves a singular default out
                    out += (key, encode_uvarint(number))
            else:
                raw = item.encode() if how == _STRING else bytes(item)
                if raw or repeated:
                    out += (key, encode_uvarint(len(raw)), raw)
    return b"".join(out)


def frame(payload: bytes) -> bytes:
    return encode_uvarint(len(payload)) + payload
