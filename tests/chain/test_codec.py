from __future__ import annotations

import msgpack
import pytest

from gridmint.chain import codec
from gridmint.chain.errors import ChainError


@pytest.mark.parametrize("value", [None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, 2**96 - 1,
                                   b"", b"\x00" * 40, "", "grains", [1, [2, [3]]], {"a": 1, "b": [b"x"]}])
def test_round_trip(value: object) -> None:
    assert codec.decode(codec.encode(value)) == value


def test_maps_are_written_in_sorted_order_whatever_the_insertion_order() -> None:
    assert codec.encode({"b": 1, "a": 2}) == codec.encode({"a": 2, "b": 1})


@pytest.mark.parametrize("bad", [1.5, float("nan"), {1: 2}, 2**96, -(2**63) - 1, object(), {"a": 0.5}])
def test_values_outside_the_subset_cannot_be_encoded(bad: object) -> None:
    with pytest.raises(ValueError):
        codec.encode(bad)


@pytest.mark.parametrize("raw", [
    b"\xcd\x00\x05",  # 5 written as uint16
    b"\xd9\x01a",  # "a" written as str8
    msgpack.packb({"b": 1, "a": 2}),  # unsorted map
    msgpack.packb(1.5),  # float
    msgpack.packb(1) + b"\x00",  # trailing byte
    b"\xc1",  # never-used byte
    b"\xdd\xff\xff\xff\xff",  # array claiming 4 billion items
    b"",
    msgpack.packb(["\x00big", b"\x00" * 12]),  # small int dressed as big
    msgpack.packb(msgpack.ExtType(1, b"x")),
])
def test_non_canonical_bytes_are_malformed(raw: bytes) -> None:
    with pytest.raises(ChainError) as caught:
        codec.decode(raw)
    assert (caught.value.module, caught.value.code) == ("tx", 1)


def test_depth_is_bounded() -> None:
    value: object = 1
    for _ in range(codec.MAX_DEPTH + 2):
        value = [value]
    with pytest.raises(ValueError):
        codec.encode(value)
    with pytest.raises(ChainError):
        codec.decode(msgpack.packb(value))
