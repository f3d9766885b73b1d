"""Price rules answer whole grains per block; a broken rule is a clear error, not a bid at a wrong price."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmint.chain.errors import ChainError
from gridmint.market.provider.pricing import PerUnit, expression_rule, script_rule

ORDER = {"id": 3, "max_price": 1_000_000,
         "resources": {"cpu_millis": 1_500, "memory_mb": 2_048, "gpu_units": 1, "gpu_models": [], "min_vram_gb": 0}}


def test_per_unit_is_integer_arithmetic() -> None:
    assert PerUnit(per_cpu=1_000, per_gb=300, per_gpu=50_000)(ORDER) == 1_500 + 600 + 50_000
    assert PerUnit(0, 0, 0)(ORDER) == 1, "a bid is never free: the chain pays a positive rate"


def test_an_expression_sees_the_order() -> None:
    assert expression_rule("1000 * cpu + 100 * memory_gb + 9 * gpus")(ORDER) == 1_709
    assert expression_rule("max_price - 1")(ORDER) == 999_999
    assert expression_rule("ceil(cpu)")(ORDER) == 2


@pytest.mark.parametrize(("text", "words"), [("1 +", "does not parse"), ("-5", "gave -5"),
                                             ("'cheap'", "gave 'cheap'")])
def test_a_bad_expression_is_refused(text: str, words: str) -> None:
    with pytest.raises(ChainError, match=words) as caught:
        expression_rule(text)(ORDER)
    assert caught.value.kind.name == "bad_price_rule"


def test_an_expression_has_no_builtins_beyond_arithmetic() -> None:
    with pytest.raises(NameError):
        expression_rule("__import__('os').getpid()")(ORDER)


def test_a_script_defines_price(tmp_path: Path) -> None:
    script = tmp_path / "price.py"
    script.write_text("def price(order):\n    return 10 * order['resources']['gpu_units'] + order['id']\n")
    assert script_rule(script)(ORDER) == 13
    (tmp_path / "none.py").write_text("x = 1\n")
    with pytest.raises(ChainError, match="defines no function price"):
        script_rule(tmp_path / "none.py")
