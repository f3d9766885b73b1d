"""The tenant's side of the market: which registered providers can serve a deployment, and why the others cannot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gridmint.chain.market import mismatch
from gridmint.market.deployment import Deployment


@dataclass(frozen=True)
class Match:
    provider: str  # gm1 address
    host_uri: str
    reason: str | None  # None: it can serve the deployment

    @property
    def fits(self) -> bool:
        return self.reason is None


def order_shape(deployment: Deployment) -> dict[str, Any]:
    """What the chain checks bids against, in the shape of an order."""
    return {"resources": {"cpu_millis": deployment.cpu_millis, "memory_mb": deployment.memory_mb,
                          "gpu_units": deployment.gpu_units, "gpu_models": deployment.gpu_models,
                          "min_vram_gb": deployment.min_vram_gb}}


def explain_match(providers: list[dict[str, Any]], deployment: Deployment) -> list[Match]:
    """Each provider (as `/market/providers` lists them) with None, or the first resource it lacks."""
    order = order_shape(deployment)
    return [Match(p["owner"], p["host_uri"], mismatch(p, order)) for p in providers]
