"""GridMint's own demand as a series source: what the network's users did, step by step, read from chain events.

Each metric sums one event attribute (or counts the events) over the blocks of each step: grains paid to miners by
credit settlements and claims (``inference-paid``), leases started (``leases``), compute orders created
(``orders``). A gateway sizing its credit lines or a provider sizing its fleet wants these forecasts. Like the
hidden-regime series, the future is blocks that do not exist yet and anyone recomputes the outcome from the chain;
unlike it, the history is public and the same for every prompt, and the parties who make the demand can move it —
at the price of really paying for it, fees included — so it suits a subnet whose consumers want the forecasts more
than a subnet that must rank miners on adversarial ground (the hidden-regime series stays the default).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from gridmint.inference.forecast_wire import Floats
from gridmint.inference.validator.series import SeriesSpec

# metric -> (event types, the attribute summed; None counts the events)
METRICS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "inference-paid": (("settled", "claimed"), "paid"),
    "leases": (("lease_started",), None),
    "orders": (("order_created",), None),
}

BlockEvents = Callable[[int], list[dict[str, Any]]]  # height -> the block's events, CometBFT-shaped


def block_events_from(client: Any) -> BlockEvents:
    """Every event of a block (its transactions' and its own), from a node's ``block_results``."""

    def read(height: int) -> list[dict[str, Any]]:
        result = client.call("block_results", height=str(height))
        events = [e for tx in result.get("txs_results") or [] for e in tx.get("events") or []]
        return events + list(result.get("finalize_block_events") or [])

    return read


def measure(events: list[dict[str, Any]], metric: str) -> float:
    types, attribute = METRICS[metric]
    total = 0.0
    for event in events:
        if event.get("type") not in types:
            continue
        if attribute is None:
            total += 1
            continue
        for pair in event.get("attributes") or []:
            if pair.get("key") == attribute:
                with contextlib.suppress(ValueError):  # an attribute this metric cannot read counts as nothing
                    total += int(pair.get("value", "0"))
    return total


class DemandSource:
    """A demand metric summed over steps of ``step_blocks`` blocks; a block's events are read once each."""

    def __init__(self, block_events: BlockEvents, metric: str = "inference-paid", history: int = 64,
                 step_blocks: int = 10) -> None:
        if metric not in METRICS:
            raise ValueError(f"unknown demand metric '{metric}'; choose one of {', '.join(METRICS)}")
        self.block_events, self.metric = block_events, metric
        self.history, self.step_blocks = history, step_blocks
        self.name = f"demand-{metric}"
        self._per_block: dict[int, float] = {}

    def _block(self, height: int) -> float:
        if height not in self._per_block:
            self._per_block[height] = measure(self.block_events(height), self.metric)
        return self._per_block[height]

    def _steps(self, firsts: range) -> Floats:
        return np.array([sum(self._block(h) for h in range(first, first + self.step_blocks) if h >= 1)
                         for first in firsts], dtype=np.float64)

    def draw(self, series_id: bytes, height: int, lead: int, horizon: int) -> SeriesSpec:
        """The metric's last ``history`` whole steps up to block ``height``; its future from ``lead`` blocks on."""
        first = height - self.history * self.step_blocks + 1
        return SeriesSpec(series_id, first, height, height + lead, horizon, self.step_blocks)

    def history_of(self, spec: SeriesSpec) -> Floats:
        return self._steps(spec.history_heights)

    def outcome_of(self, spec: SeriesSpec) -> Floats:
        return self._steps(spec.future_heights)
