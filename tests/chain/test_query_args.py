"""Query arguments have one spelling and a range: a number is plain ASCII decimal without a sign, spaces or
leading zeros, within the width of what it names; an address is a gm1 address; anything else is a coded refusal
that says what was expected."""

from __future__ import annotations

import pytest

from gridmint.chain.crypto import format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.query_args import (
    MAX_DATA_BYTES,
    MAX_PATH_BYTES,
    check_data,
    check_height,
    check_path,
    parse_address_arg,
    parse_id,
    parse_netuid,
    parse_options,
)
from tests.support.chain import key


@pytest.mark.parametrize("text, value", [("0", 0), ("7", 7), ("65535", 65_535)])
def test_netuids_in_range_are_read(text: str, value: int) -> None:
    assert parse_netuid(text) == value


@pytest.mark.parametrize("text", ["", "65536", "99999", "07", "+7", "-7", " 7", "7 ", "٧", "²", "7.0", "0x7", "1_0",
                                  "9" * 5_000])
def test_anything_else_is_refused_with_the_range(text: str) -> None:
    with pytest.raises(ChainError) as refused:
        parse_netuid(text)
    assert (refused.value.module, refused.value.kind.name) == ("query", "bad_request")
    assert "from 0 to 65535" in refused.value.message and len(refused.value.message) < 200


def test_ids_are_u64() -> None:
    assert parse_id("order id", str(2**64 - 1)) == 2**64 - 1
    with pytest.raises(ChainError, match="out of range"):
        parse_id("order id", str(2**64))


def test_addresses_are_checked_before_they_are_decoded() -> None:
    address = format_address(key("alice").address)
    assert parse_address_arg("address", address) == key("alice").address
    for text in ("x" * 10_000, address + "\x00", "gm1" + "é" * 10):
        with pytest.raises(ChainError) as refused:
            parse_address_arg("address", text)
        assert refused.value.kind.name == "invalid_address" and len(refused.value.message) < 200


def test_path_data_and_height_are_bounded() -> None:
    assert check_path("/bank/supply") == "/bank/supply"
    for path in ("/" * (MAX_PATH_BYTES + 1), "/bank/\ud800", b"/bank/supply"):
        with pytest.raises(ChainError):
            check_path(path)
    assert check_data(b"x" * MAX_DATA_BYTES)
    with pytest.raises(ChainError):
        check_data(b"x" * (MAX_DATA_BYTES + 1))
    assert check_height(0, 5) == 0 and check_height(5, 5) == 5
    for height, name in ((-1, "bad_request"), (6, "height_unavailable"), (2**64, "height_unavailable"),
                         (True, "bad_request")):
        with pytest.raises(ChainError) as refused:
            check_height(height, 5)
        assert refused.value.kind.name == name


def test_options_come_from_a_list() -> None:
    assert parse_options(b"weights,bonds", ("weights", "bonds")) == {"weights", "bonds"}
    assert parse_options(b"", ("weights", "bonds")) == set()
    with pytest.raises(ChainError, match="unknown option"):
        parse_options(b"weights,stake", ("weights", "bonds"))
