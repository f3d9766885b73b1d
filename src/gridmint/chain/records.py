"""A module's stored state as genesis records, so that an exported genesis restarts a chain with exactly the state
it left: the same keys, the same value bytes, hence the same app hash.

Every module stores its state under ``<module>/`` and nowhere else (tests/chain/test_export.py checks it). Records
hold every such key except those the module writes from readable genesis fields of its own (its ``params``, the
bank's balances): a module needs no exporter per record kind, and state a module adds later is exported without
anyone remembering to. In the file, records are grouped by the readable head of their keys::

    "records": {"market/lease/": {"0000000000000003": "<base64>"}, "market/next_order": {"": "<base64>"}}

A key is its group's text followed by the bytes its hex names; a value is the canonical codec encoding of what the
module stored (chain/codec.py), checked canonical on the way in, or empty for an index entry whose key says it all.
Values are kept as the module stored them, byte for byte, rather than rewritten into JSON: the module's queries show
them readably. What a hand-edited file can get wrong is checked twice: each record against the kinds of record its
module declares (the key's head and length, the value's shape), and, once the state is built, every module's
invariants (``App.init_chain``), which catch records that disagree with the bank (funds held for records that are
missing, or records without funds). Values that fit their shape but not each other (a next id below one in use, say)
are the file author's to get right, as in any genesis.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gridmint.chain import codec
from gridmint.chain.errors import INVALID_GENESIS, ChainError
from gridmint.chain.state import Reader, State

Records = tuple[tuple[bytes, bytes], ...]  # (key, canonical value), sorted by key

_READABLE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_/")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def is_reserved(key: bytes, reserved: tuple[bytes, ...]) -> bool:
    return any(key.startswith(prefix) for prefix in reserved)


def split_key(key: bytes) -> tuple[str, str]:
    """``(group, hex rest)``: the key's readable head up to its last ``/`` (all of it when every byte is readable)
    and the hex of the rest. Any split would read back as the same key; this one keeps the file readable."""
    head = 0
    while head < len(key) and key[head] in _READABLE:
        head += 1
    if head < len(key):
        head = key.rfind(b"/", 0, head) + 1
    return key[:head].decode("ascii"), key[head:].hex()


def export_records(state: Reader, module: str, reserved: tuple[bytes, ...] = ()) -> dict[str, dict[str, str]]:
    """Every key under ``<module>/`` but the ``reserved`` prefixes, grouped as the file writes them."""
    groups: dict[str, dict[str, str]] = {}
    for key, value in state.scan(module.encode() + b"/"):
        if not is_reserved(key, reserved):
            group, rest = split_key(key)
            groups.setdefault(group, {})[rest] = base64.b64encode(value).decode("ascii")
    return groups


# --- the shapes of records ----------------------------------------------------------------------------------
# A module declares each kind of record it keeps: the key's head, how many bytes follow it, and the shape of the
# value, so that a record of the wrong shape in a hand-edited genesis is refused before any module reads it.

Shape = Callable[[Any], bool]


def INT(value: Any) -> bool:  # noqa: N802 (shapes read as the types they stand for)
    return type(value) is int


def BOOL(value: Any) -> bool:  # noqa: N802
    return type(value) is bool


def STR(value: Any) -> bool:  # noqa: N802
    return type(value) is str


def BYTES(length: int | None = None) -> Shape:  # noqa: N802
    return lambda value: type(value) is bytes and (length is None or len(value) == length)


ADDRESS = BYTES(20)


def LIST(item: Shape) -> Shape:  # noqa: N802
    return lambda value: type(value) is list and all(item(entry) for entry in value)


def TUPLE(*items: Shape) -> Shape:  # noqa: N802
    """A list of fixed length, each position with its own shape."""
    return lambda value: (type(value) is list and len(value) == len(items)
                          and all(item(entry) for item, entry in zip(items, value, strict=True)))


def MAP(optional: tuple[str, ...] = (), **fields: Shape) -> Shape:  # noqa: N802
    """A map with exactly these fields (those named in ``optional`` may be absent)."""
    def check(value: Any) -> bool:
        if type(value) is not dict or not set(fields) - set(optional) <= set(value) <= set(fields):
            return False
        return all(fields[name](entry) for name, entry in value.items())
    return check


def DICT(item: Shape) -> Shape:  # noqa: N802
    """A map of any text keys to values of one shape (a subnet's hyperparameters)."""
    return lambda value: type(value) is dict and all(item(entry) for entry in value.values())


def ONE_OF(*shapes: Shape) -> Shape:  # noqa: N802
    return lambda value: any(shape(value) for shape in shapes)


@dataclass(frozen=True)
class RecordKind:
    """One kind of record a module keeps: keys ``prefix`` + ``key_bytes`` bytes (None: any number), values of
    ``value``'s shape (None: the empty value of an index entry, whose key says it all)."""

    prefix: bytes
    key_bytes: int | None
    value: Shape | None


def parse_records(where: str, module: str, raw: Any, reserved: tuple[bytes, ...] = (),
                  kinds: tuple[RecordKind, ...] | None = None) -> Records:
    """The records of a genesis section, checked: keys under ``<module>/`` and outside ``reserved`` (what the
    section's readable fields write), each listed once, values in the canonical encoding, and, where the module
    declares its ``kinds``, each record of a declared kind and shape."""
    if not isinstance(raw, dict):
        raise INVALID_GENESIS(f"{where}: expected an object of key groups such as {{\"{module}/...\": {{...}}}}")
    namespace = f"{module}/"
    records: dict[bytes, bytes] = {}
    for group, entries in raw.items():
        if not isinstance(group, str) or not group.isascii() or not group.startswith(namespace):
            raise INVALID_GENESIS(f"{where}: group '{str(group)[:60]}' is not a key of this module "
                                  f"(expected ASCII text starting with '{namespace}')")
        if not isinstance(entries, dict):
            raise INVALID_GENESIS(f"{where}.{group}: expected an object of \"<hex>\": \"<base64>\" entries")
        for rest, encoded in entries.items():
            at = f"{where}.{group}[{str(rest)[:40]}]"
            if not isinstance(rest, str) or not _HEX.fullmatch(rest):
                raise INVALID_GENESIS(f"{at}: expected the rest of the key in lowercase hex")
            key = group.encode("ascii") + bytes.fromhex(rest)
            if is_reserved(key, reserved):
                raise INVALID_GENESIS(f"{at}: this key is written from the section's own fields, not from records")
            if key in records:
                raise INVALID_GENESIS(f"{at}: key {key!r} is listed twice")
            records[key] = _parse_value(at, encoded, None if kinds is None else _kind_of(at, key, kinds))
    return tuple(sorted(records.items()))


def _kind_of(at: str, key: bytes, kinds: tuple[RecordKind, ...]) -> RecordKind:
    matching = [kind for kind in kinds if key.startswith(kind.prefix)]
    if not matching:
        known = ", ".join(kind.prefix.decode() for kind in kinds)
        raise INVALID_GENESIS(f"{at}: no record of this module has such a key (its records: {known})")
    kind = max(matching, key=lambda candidate: len(candidate.prefix))
    if kind.key_bytes is not None and len(key) - len(kind.prefix) != kind.key_bytes:
        raise INVALID_GENESIS(f"{at}: a {kind.prefix.decode()} key has {kind.key_bytes} bytes after its head, "
                              f"this one {len(key) - len(kind.prefix)}")
    return kind


def _parse_value(at: str, encoded: Any, kind: RecordKind | None) -> bytes:
    if not isinstance(encoded, str) or not _BASE64.fullmatch(encoded):
        raise INVALID_GENESIS(f"{at}: expected the value as padded base64 of its canonical encoding")
    try:
        value = base64.b64decode(encoded, validate=True)
        decoded = codec.decode(value) if value else None  # empty: an index entry, whose key says it all
    except (binascii.Error, ValueError):  # excluded by the pattern; kept so that nothing else escapes as a crash
        raise INVALID_GENESIS(f"{at}: the value is not base64") from None
    except ChainError as error:
        raise INVALID_GENESIS(f"{at}: {error.message}") from None
    if kind is not None:
        fits = value == b"" if kind.value is None else value != b"" and kind.value(decoded)
        if not fits:
            raise INVALID_GENESIS(f"{at}: the value does not have the shape of a {kind.prefix.decode()} record")
    return value


def write_records(state: State, records: Records) -> None:
    for key, value in records:
        state.set(key, value)
