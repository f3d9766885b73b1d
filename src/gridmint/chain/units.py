"""Amounts in grains: 1 MINT = 10**9 grains. Parsing and formatting without floats."""

from __future__ import annotations

GRAINS_PER_MINT = 10**9
MINT_DECIMALS = 9
MAX_U64 = 2**64 - 1
MAX_AMOUNT = 2**96 - 1  # no balance or supply may exceed this; arithmetic beyond it raises


def format_mint(grains: int) -> str:
    """``1500000000`` -> ``"1.5 MINT"``; exact for every integer."""
    sign = "-" if grains < 0 else ""
    whole, frac = divmod(abs(grains), GRAINS_PER_MINT)
    frac_text = f"{frac:09d}".rstrip("0") or "0"
    return f"{sign}{whole}.{frac_text} MINT"


def parse_mint(text: str) -> int:
    """``"1.5"`` or ``"1.5 MINT"`` -> ``1500000000`` grains; ``"42grain"`` -> 42. Raises ValueError."""
    cleaned = text.strip().replace("_", "")
    lowered = cleaned.lower()
    if lowered.endswith("grains") or lowered.endswith("grain"):
        digits = lowered.removesuffix("grains").removesuffix("grain").strip()
        if not digits.isdigit():
            raise ValueError(f"'{text}' is not a whole number of grains")
        return int(digits)
    if lowered.endswith("mint"):
        cleaned = cleaned[: -len("mint")].strip()
    whole, _, frac = cleaned.partition(".")
    if not whole:
        whole = "0"
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"'{text}' is not an amount; expected a number of MINT such as 1.5")
    if len(frac) > MINT_DECIMALS:
        raise ValueError(f"'{text}' has more than {MINT_DECIMALS} decimals; 1 grain = 0.000000001 MINT")
    return int(whole) * GRAINS_PER_MINT + int(frac.ljust(MINT_DECIMALS, "0") or "0")
