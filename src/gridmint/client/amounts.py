"""Amounts as people type them: MINT with up to nine decimals, or a number of grains."""

from __future__ import annotations

from gridmint.chain.units import GRAINS_PER_MINT, MINT_DECIMALS


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
    if not whole and not frac:
        raise ValueError(f"'{text}' is not an amount; expected a number of MINT such as 1.5")
    if not whole:
        whole = "0"
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"'{text}' is not an amount; expected a number of MINT such as 1.5")
    if len(frac) > MINT_DECIMALS:
        raise ValueError(f"'{text}' has more than {MINT_DECIMALS} decimals; 1 grain = 0.000000001 MINT")
    return int(whole) * GRAINS_PER_MINT + int(frac.ljust(MINT_DECIMALS, "0") or "0")
