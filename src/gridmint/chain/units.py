"""Amounts in grains: 1 MINT = 10**9 grains, shown without floats."""

from __future__ import annotations

GRAINS_PER_MINT = 10**9
MINT_DECIMALS = 9
MAX_U64 = 2**64 - 1
MAX_AMOUNT = 2**96 - 1  # no balance or supply may exceed this; arithmetic beyond it raises


def format_mint(grains: int) -> str:
    """Grains as MINT text with up to nine decimals, exact for every integer (no float is involved)."""
    sign = "-" if grains < 0 else ""
    whole, frac = divmod(abs(grains), GRAINS_PER_MINT)
    frac_text = f"{frac:09d}".rstrip("0") or "0"
    return f"{sign}{whole}.{frac_text} MINT"
