from __future__ import annotations

import pytest

from gridmint.chain.units import format_mint
from gridmint.client.amounts import parse_mint


@pytest.mark.parametrize("text, grains", [
    ("1", 10**9), ("1.5", 1_500_000_000), ("0.000000001", 1), (".5", 500_000_000), ("2 MINT", 2 * 10**9),
    ("1_000", 1000 * 10**9), ("42grain", 42), ("7 grains", 7),
])
def test_parse(text: str, grains: int) -> None:
    assert parse_mint(text) == grains


@pytest.mark.parametrize("text", ["", "abc", "1.0000000001", "-1", "1e9", "1.2.3", "1.5grain"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_mint(text)


@pytest.mark.parametrize("grains, text", [(0, "0.0 MINT"), (1, "0.000000001 MINT"), (1_500_000_000, "1.5 MINT"),
                                          (-2 * 10**9, "-2.0 MINT"), (10**30, f"{10**21}.0 MINT")])
def test_format(grains: int, text: str) -> None:
    assert format_mint(grains) == text
    if grains >= 0:
        assert parse_mint(text) == grains
