"""The one canonical encoding for transactions, state values and query answers.

A strict subset of MessagePack: ``None``, ``bool``, integers in ``[-2**63, 2**96)`` stored as MessagePack ints
when they fit in 64 bits, ``bytes``, ``str``, lists and maps with ``str`` keys in sorted order. No floats, no
extension types. Each value has exactly one encoding: ``decode`` re-encodes what it read and refuses the input
unless the bytes are identical, so a non-minimal integer, an unsorted map or a trailing byte is malformed.
Large integers above 64 bits (supply-sized amounts) are tagged as ``["big", <bytes big-endian>]``.

Each encoded document that is stored or signed starts with a format version where it needs one (see ``tx``).
"""

from __future__ import annotations

from typing import Any

import msgpack

from gridmint.chain.errors import MALFORMED

FORMAT_VERSION = 1
MAX_DEPTH = 16
_U64 = 2**64
_I64_MIN = -(2**63)
_BIG_LIMIT = 2**96
_BIG_TAG = "\x00big"

_SCALARS = (int, str, bytes)  # exact types: bool and float are not among them
_PLAIN = (str, bytes, bool, type(None))
Value = Any  # None | bool | int | bytes | str | list[Value] | dict[str, Value]


def _normalise(value: Value, depth: int) -> Value:
    """Put a value in the shape MessagePack writes canonically (sorted maps, tagged big ints)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"value nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, (bool, str, bytes)):
        return value
    if isinstance(value, int):
        if _I64_MIN <= value < _U64:
            return value
        if 0 <= value < _BIG_LIMIT:
            return [_BIG_TAG, value.to_bytes(12, "big")]
        raise ValueError(f"integer {value} is outside the encodable range")
    if isinstance(value, (list, tuple)):
        return [item if _is_plain_leaf(item) else _normalise(item, depth + 1) for item in value]
    if isinstance(value, dict):
        keys = sorted(value)
        for key in keys:
            if not isinstance(key, str):
                raise ValueError(f"map key {key!r} is not a string")
        return {key: value[key] if _is_plain_leaf(value[key]) else _normalise(value[key], depth + 1) for key in keys}
    raise ValueError(f"type {type(value).__name__} cannot be encoded canonically")


def _is_plain_leaf(value: Value) -> bool:
    """Leaves written as they are (checked inline: encoding thousands of small records stays fast)."""
    kind = type(value)
    return kind in _PLAIN or (kind is int and _I64_MIN <= value < _U64)


def encode(value: Value) -> bytes:
    """The canonical bytes of a value. Raises ValueError for anything outside the subset."""
    if type(value) is int and _I64_MIN <= value < _U64:  # most state writes are balances and nonces
        return msgpack.packb(value)  # type: ignore[no-any-return]
    return bytes(msgpack.packb(_normalise(value, 0), use_bin_type=True))


_LEAVES = (int, str, bytes, bool, type(None))  # exact types that need no further look when decoding


def _denormalise(value: Value, depth: int) -> Value:
    """Check the types read back and turn tagged big integers into ints (leaves are passed over inline,
    which keeps decoding thousands of small records fast)."""
    if depth > MAX_DEPTH:
        raise ValueError("nested too deep")
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is list:
        if len(value) == 2 and value[0] == _BIG_TAG and type(value[1]) is bytes:
            if len(value[1]) != 12:
                raise ValueError("big integer of the wrong width")
            number = int.from_bytes(value[1], "big")
            if number < _U64:
                raise ValueError("small integer written as a big one")
            return number
        return [item if type(item) in _LEAVES else _denormalise(item, depth + 1) for item in value]
    if kind is dict:
        keys = list(value)
        if keys != sorted(keys):
            raise ValueError("map keys are not in sorted order")
        return {key: item if type(item) in _LEAVES else _denormalise(item, depth + 1) for key, item in value.items()}
    raise ValueError(f"type {kind.__name__} is not allowed")


def decode(data: bytes) -> Value:
    """Read canonical bytes; anything else raises ``tx/malformed``."""
    try:
        raw = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True, timestamp=0)
        value = raw if type(raw) in _SCALARS else _denormalise(raw, 0)
    except Exception as exc:
        raise MALFORMED(f"bytes are not a canonical GridMint encoding: {exc}") from None
    if msgpack.packb(raw, use_bin_type=True) != data:
        raise MALFORMED("bytes are not the canonical encoding of their value (non-minimal or trailing data)")
    return value


def decode_stored(data: bytes) -> Value:
    """Read bytes that ``encode`` wrote into this node's own store: the types are still checked, but the
    canonical re-encoding is skipped (it cannot fail for bytes that ``encode`` produced, and state is read far
    more often than it is written)."""
    try:
        raw = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True, timestamp=0)
        return raw if type(raw) in _SCALARS else _denormalise(raw, 0)
    except Exception as exc:
        raise MALFORMED(f"stored value is not a GridMint encoding: {exc}") from None
