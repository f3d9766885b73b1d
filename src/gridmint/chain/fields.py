"""Field kinds for messages: each turns a decoded wire value into a checked Python value or raises.

A message declares each field with its kind in its type, ``price: Amount`` or ``name: Annotated[str, text(64)]``
(tx.message reads them); the kind's check runs before any handler sees the value, so handlers work with addresses
of the right length, positive amounts and bounded strings. Every kind bounds its value: numbers to their width
(u16, u64), amounts to ``MAX_AMOUNT`` (no supply can exceed it, so a larger amount could never be paid), texts and
lists to a length. A refusal quotes the value only in part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from gridmint.chain.crypto import ADDRESS_BYTES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from gridmint.chain.errors import INVALID_ADDRESS, INVALID_AMOUNT, INVALID_FIELD
from gridmint.chain.units import MAX_AMOUNT, MAX_U64

MAX_U16 = 65_535
FieldCheck = Callable[[str, Any], Any]
_DESCRIPTIONS: dict[FieldCheck, str] = {}  # what each check accepts, in words (the reference docs read it)


def described(description: str, check: FieldCheck) -> FieldCheck:
    _DESCRIPTIONS[check] = description
    return check


def describe(check: FieldCheck) -> str:
    return _DESCRIPTIONS.get(check, getattr(check, "__name__", "value"))


def _type_name(value: Any) -> str:
    return type(value).__name__


def address(name: str, value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != ADDRESS_BYTES:
        shown = value[:24].hex() if isinstance(value, bytes) else _type_name(value)
        raise INVALID_ADDRESS(f"{name}: {shown} is not an address; expected {ADDRESS_BYTES} bytes (gm1...)")
    return value


def public_key(name: str, value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != PUBLIC_KEY_BYTES:
        raise INVALID_FIELD(f"{name}: expected a {PUBLIC_KEY_BYTES}-byte ed25519 public key")
    return value


def u64(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_U64:
        raise INVALID_FIELD(f"{name}: expected a whole number from 0 to {MAX_U64}, got {_type_name(value)}")
    return value


def amount(name: str, value: Any) -> int:
    """A positive amount in grains. Zero and negative amounts are refused with ``invalid_amount``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise INVALID_FIELD(f"{name}: expected a whole number of grains, got {_type_name(value)}")
    if value <= 0:
        raise INVALID_AMOUNT(f"{name}: amount must be positive, got {value} grains")
    if value > MAX_AMOUNT:
        raise INVALID_AMOUNT(f"{name}: amount {value} grains is larger than any supply")
    return value


def amount_or_zero(name: str, value: Any) -> int:
    """An amount in grains where 0 means "none" (an optional cap, say)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise INVALID_FIELD(f"{name}: expected a whole number of grains, got {_type_name(value)}")
    if not 0 <= value <= MAX_AMOUNT:
        raise INVALID_AMOUNT(f"{name}: expected 0 (none) to {MAX_AMOUNT} grains, got {value}")
    return value


def signature(name: str, value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != SIGNATURE_BYTES:
        raise INVALID_FIELD(f"{name}: expected a {SIGNATURE_BYTES}-byte ed25519 signature")
    return value


def text(max_bytes: int) -> FieldCheck:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise INVALID_FIELD(f"{name}: expected text, got {_type_name(value)}")
        if len(value) > max_bytes:  # each character is at least one byte: no need to encode a long one
            raise INVALID_FIELD(f"{name}: longer than {max_bytes} bytes")
        try:
            size = len(value.encode())
        except UnicodeEncodeError:  # a lone surrogate, which no UTF-8 text holds
            raise INVALID_FIELD(f"{name}: expected UTF-8 text") from None
        if size > max_bytes:
            raise INVALID_FIELD(f"{name}: longer than {max_bytes} bytes")
        return value

    return described(f"text (≤ {max_bytes} bytes)", check)


def choice(*options: str) -> FieldCheck:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            shown = value[:40] if isinstance(value, str) else _type_name(value)
            raise INVALID_FIELD(f"{name}: expected one of {', '.join(options)}, got {shown!r}")
        return value

    return described(f"one of {', '.join(options)}", check)



def u16(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_U16:
        raise INVALID_FIELD(f"{name}: expected a whole number from 0 to {MAX_U16}")
    return value


def list_of(item_check: FieldCheck, max_items: int, items: str) -> FieldCheck:
    def check(name: str, value: Any) -> list[Any]:
        if not isinstance(value, list) or len(value) > max_items:
            raise INVALID_FIELD(f"{name}: expected a list of at most {max_items} {items}")
        return [item_check(f"{name}[{index}]", item) for index, item in enumerate(value)]

    return described(f"list of ≤ {max_items} {describe(item_check)}", check)


def record(*parts: tuple[str, FieldCheck]) -> FieldCheck:
    """A fixed-length list whose items are checked by position, such as ``[consumer, miner, amount, requests]``."""
    names = ", ".join(part for part, _ in parts)

    def check(name: str, value: Any) -> list[Any]:
        if not isinstance(value, list) or len(value) != len(parts):
            raise INVALID_FIELD(f"{name}: expected [{names}]")
        return [item_check(f"{name}.{part}", item) for (part, item_check), item in zip(parts, value, strict=True)]

    return described("[" + ", ".join(f"{part}: {describe(c)}" for part, c in parts) + "]", check)


def u16_list(max_items: int) -> FieldCheck:
    return list_of(u16, max_items, "numbers from 0 to 65535")


def text_list(max_items: int, max_bytes: int) -> FieldCheck:
    return list_of(text(max_bytes), max_items, f"texts of at most {max_bytes} bytes")


def short_bytes(max_length: int) -> FieldCheck:
    """Raw bytes of at most ``max_length`` (a commitment's data, say)."""

    def check(name: str, value: Any) -> bytes:
        if not isinstance(value, bytes) or len(value) > max_length:
            raise INVALID_FIELD(f"{name}: expected bytes, at most {max_length} of them")
        return value

    return described(f"bytes (≤ {max_length})", check)


def bytes32(name: str, value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise INVALID_FIELD(f"{name}: expected 32 bytes")
    return value


for _check, _words in ((address, "address (20 bytes, gm1…)"), (public_key, "ed25519 public key (32 bytes)"),
                       (u64, "u64"), (u16, "u16"), (amount, "amount (grains, > 0)"), (bytes32, "32 bytes"),
                       (amount_or_zero, "amount (grains, 0 = none)"),
                       (signature, "ed25519 signature (64 bytes)")):
    described(_words, _check)


# The kinds without a parameter, as the types that message fields are declared with (``to: Address``); a kind with
# a parameter is written out where it is used (``Annotated[str, text(64)]``).
Address = Annotated[bytes, address]
PublicKey = Annotated[bytes, public_key]
Signature = Annotated[bytes, signature]
Bytes32 = Annotated[bytes, bytes32]
U16 = Annotated[int, u16]
U64 = Annotated[int, u64]
Amount = Annotated[int, amount]
AmountOrZero = Annotated[int, amount_or_zero]
