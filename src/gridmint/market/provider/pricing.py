"""How a provider prices an order: per unit of resource, a Python expression, or a script with ``price(order)``.

Every rule answers in grains per block (an integer); the bid engine bids only where that is at most the order's
max. The expression and the script are the provider's own configuration, run in its own process: they are trusted
as much as the provider trusts itself, and they see only the order (resources, max price, id).

    per-unit:   grains per CPU core, per GB of memory and per GPU, each per block
    expression: "1000 * cpu + 200 * memory_gb + 50_000 * gpus"  (names: cpu, memory_gb, gpus, max_price, order)
    script:     a file defining ``def price(order: dict) -> int``
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridmint.chain.errors import register

BAD_PRICE_RULE = register("provider", 1, "bad_price_rule")

PriceRule = Callable[[dict[str, Any]], int]  # an order (as /market/order answers) -> grains per block

SAFE_BUILTINS = {"min": min, "max": max, "round": round, "int": int, "abs": abs, "ceil": math.ceil}


@dataclass(frozen=True)
class PerUnit:
    per_cpu: int  # grains per core per block
    per_gb: int  # grains per GB of memory per block
    per_gpu: int  # grains per GPU per block

    def __call__(self, order: dict[str, Any]) -> int:
        r = order["resources"]
        grains = (int(r["cpu_millis"]) * self.per_cpu // 1000 + int(r["memory_mb"]) * self.per_gb // 1024
                  + int(r["gpu_units"]) * self.per_gpu)
        return max(1, grains)


def _names(order: dict[str, Any]) -> dict[str, Any]:
    r = order["resources"]
    return {"cpu": r["cpu_millis"] / 1000, "memory_gb": r["memory_mb"] / 1024, "gpus": r["gpu_units"],
            "max_price": order["max_price"], "order": order}


def _whole(value: Any, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise BAD_PRICE_RULE(f"the price rule {source} gave {value!r}; expected a number of grains ≥ 0")
    return max(1, math.ceil(value))


def expression_rule(text: str) -> PriceRule:
    try:
        code = compile(text, "<price expression>", "eval")
    except SyntaxError as error:
        raise BAD_PRICE_RULE(f"the price expression does not parse: {error.msg}") from None

    def rule(order: dict[str, Any]) -> int:
        value = eval(code, {"__builtins__": SAFE_BUILTINS}, _names(order))  # noqa: S307 - the provider's own rule
        return _whole(value, "expression")

    return rule


def script_rule(path: Path) -> PriceRule:
    namespace: dict[str, Any] = {}
    try:
        exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - the provider's own file
    except (OSError, SyntaxError) as error:
        raise BAD_PRICE_RULE(f"cannot load the price script {path}: {error}") from None
    function = namespace.get("price")
    if not callable(function):
        raise BAD_PRICE_RULE(f"the price script {path} defines no function price(order)")
    return lambda order: _whole(function(order), f"script {path.name}")
