from __future__ import annotations

import pytest

from gridmint.chain.crypto import PrivateKey, address_of, format_address, parse_address, verify
from gridmint.chain.errors import ChainError


def test_sign_and_verify() -> None:
    key = PrivateKey(b"\x01" * 32)
    signature = key.sign(b"message")
    assert verify(key.public_key, b"message", signature)
    assert not verify(key.public_key, b"messagE", signature)
    assert not verify(PrivateKey(b"\x02" * 32).public_key, b"message", signature)
    assert not verify(key.public_key, b"message", signature[:-1])


def test_address_round_trip_and_known_vector() -> None:
    key = PrivateKey(bytes(32))
    text = format_address(key.address)
    assert text.startswith("gm1") and parse_address(text) == address_of(key.public_key)
    assert parse_address(text.upper()) == key.address
    # Fixed so that a change of derivation or checksum is noticed: addresses are money.
    assert text == "gm1zw0rjs8xfd2fzu3q3rv6p46pv28usfhqsk3z80"


@pytest.mark.parametrize("bad", [
    "gm1zw0rjs8xfd2fzu3q3rv6p46pv28usfhqsk3z81",  # checksum
    "gm1zw0rjs8xfd2fzu3q3rv6p46pv28usfhqsk3z8",  # truncated
    "cosmos1zw0rjs8xfd2fzu3q3rv6p46pv28usfhqsk3z80",  # prefix
    "gm1Zw0rjs8xfd2fzu3q3rv6p46pv28usfhqsk3z80",  # mixed case
    "gm1bw0rjs8xfd2fzu3q3rv6p46pv28usfhqsk3z80",  # 'b' is not in the alphabet
    "",
    "gm1",
])
def test_invalid_addresses_are_refused_with_a_code(bad: str) -> None:
    with pytest.raises(ChainError) as caught:
        parse_address(bad)
    assert (caught.value.module, caught.value.kind.name) == ("tx", "invalid_address")
