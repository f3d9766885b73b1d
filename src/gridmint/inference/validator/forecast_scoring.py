"""Scoring forecasts once their future has happened, the way Synth (Bittensor SN50) scores price paths.

1. **CRPS** of each miner's ensemble of paths against what happened, exact (``crps_ensemble``: mean |x − y| − ½ mean
   |x − x'|, the second term from sorted members in O(m log m)), over the *increments* of several scales — one
   step, a few steps, the whole horizon — summed (``crps_over_increments``), so a forecast must get both the next
   step and the drift right. Quantile answers are scored with the pinball loss (``pinball_loss``).
2. **Per prompt** (``normalise_prompt``): values above ``cap_multiple`` × the field's median are capped there first;
   a miss (no answer, late, malformed, unsigned, or a copy of an answer another miner sent earlier) gets the 95th
   percentile of the capped field; then a softmax of −β·CRPS / median, so a prompt's scores sum to 1 whatever the
   series' scale (Synth's β is on its price scale; dividing by the median makes one β fit every series).
3. **Leaderboard** (``Leaderboard``): each miner's time-decayed mean of its prompt scores (half-life and window in
   blocks, the chain's clock), and weights ∝ score^``power`` (Synth: 2).

**Copies** (``find_copies``): an answer whose paths, sorted at each step, lie within ``tolerance`` × the ensemble
spread of an answer that reached the validator earlier (the smaller of the two answers' spreads) is a copy and
scores as a miss, so a miner that waits for another's answer and sends it on earns less than the one it copies. The
tolerance is the pair's own, never the field's: when it was the field's median spread, answers of absurd spread from
half the field (cheap to register) widened it until every honest answer "copied" the attacker's first one.

Everything here is numpy over whole fields at once: 256 miners × 288 steps × 100 paths in ~1 ms per miner
(bench/forecast_scoring.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

SYNTH_SCALES = (1, 6, 36, 288)  # 5 min, 30 min, 3 h and 24 h in Synth's 5-minute steps
CAP_MULTIPLE = 10.0
MISS_PERCENTILE = 95.0
BETA = 4.0
COPY_TOLERANCE = 0.01


def crps_ensemble(members: Floats, outcome: Floats) -> Floats:
    """CRPS of ensembles ``members`` [..., m] against ``outcome`` [...]: exact, lower is better."""
    count = members.shape[-1]
    error: Floats = np.abs(members - outcome[..., None]).mean(axis=-1)
    ranked = np.sort(members, axis=-1)
    # ½ E|X − X'| = Σ_i (2i − m − 1) x_(i) / m²  (members sorted, i from 1)
    weights = (2.0 * np.arange(1, count + 1) - count - 1) / (count * count)
    spread: Floats = ranked @ weights
    return error - spread


def increments(values: Floats, origin: Floats, scale: int) -> Floats:
    """Changes over non-overlapping windows of ``scale`` steps along the last axis of ``values`` [..., H], from
    ``origin`` [...] (the last known value): [..., H // scale]."""
    full = np.concatenate([origin[..., None], values], axis=-1)
    sampled = full[..., ::scale]
    return np.diff(sampled, axis=-1)


def crps_over_increments(paths: Floats, origin: float, outcome: Floats, scales: Sequence[int],
                         block: int = 8) -> Floats:
    """Σ over scales and windows of the CRPS of each field member's path increments: ``paths`` [miners, m, H],
    ``outcome`` [H] -> [miners]. Scales longer than the horizon are skipped. Miners go ``block`` at a time, so
    the temporaries stay in cache (the whole field at once is ~60 MB per temporary for Synth's shape)."""
    total = np.zeros(paths.shape[0], dtype=np.float64)
    realised_full = np.concatenate([[origin], outcome])
    used = [scale for scale in scales if scale <= outcome.shape[-1]]
    realised = {scale: np.diff(realised_full[::scale]) for scale in used}
    for first in range(0, paths.shape[0], block):
        part = paths[first:first + block]
        # Steps before members, once: every scale then sorts contiguous rows of members.
        by_step = np.empty((part.shape[0], part.shape[2] + 1, part.shape[1]))
        by_step[:, 0, :] = origin
        by_step[:, 1:, :] = np.swapaxes(part, 1, 2)
        for scale in used:
            members = np.diff(by_step[:, ::scale, :], axis=1)  # [block, windows, m]
            total[first:first + block] += crps_ensemble(
                members, np.broadcast_to(realised[scale], members.shape[:2])).sum(axis=-1)
    return total


def pinball_loss(forecasts: Floats, levels: Floats, outcome: Floats) -> Floats:
    """Mean pinball loss of quantile forecasts [miners, q, H] at ``levels`` [q] against ``outcome`` [H]."""
    gap = outcome[None, None, :] - forecasts
    tau = levels[None, :, None]
    return np.maximum(tau * gap, (tau - 1.0) * gap).mean(axis=(1, 2))  # type: ignore[no-any-return]


def normalise_prompt(loss: Floats, beta: float = BETA, cap_multiple: float = CAP_MULTIPLE,
                     miss_percentile: float = MISS_PERCENTILE) -> Floats:
    """One prompt's scores from each miner's loss (NaN = a miss); they sum to 1 unless every miner missed."""
    answered = np.isfinite(loss)
    if not answered.any():
        return np.zeros_like(loss)
    median = float(np.median(loss[answered]))
    capped = np.where(answered, np.minimum(loss, cap_multiple * median), np.nan)
    miss = float(np.percentile(capped[answered], miss_percentile))
    filled = np.where(answered, capped, miss)
    scaled = -beta * filled / median if median > 0 else np.zeros_like(filled)
    weights = np.exp(scaled - scaled.max())
    return weights / weights.sum()  # type: ignore[no-any-return]


def find_copies(paths: list[Floats | None], tolerance: float = COPY_TOLERANCE) -> set[int]:
    """Indices of answers (in arrival order; None = no answer) that copy an earlier one: their paths, sorted at
    each step, within ``tolerance`` × the smaller spread of the two of an earlier answer's (mean absolute gap).

    The mean of sorted members is the mean of the members, and a mean gap bounds the gap of the means, so pairs
    whose per-step means are further apart than the limit are ruled out all at once; only the rest are sorted and
    compared in full."""
    present = [index for index, p in enumerate(paths) if p is not None]
    if len(present) < 2:
        return set()
    shapes = {paths[index].shape for index in present}  # type: ignore[union-attr]
    if len(shapes) != 1:
        return set()
    stacked = np.stack([p for p in paths if p is not None])  # [n, m, H]
    horizon = stacked.shape[2]
    # The spread only scales the tolerance: a sample of steps measures it well enough. Each pair is held to its
    # own (the smaller of its two spreads), so nobody's answer can widen the tolerance another pair is held to.
    with np.errstate(over="ignore", invalid="ignore"):  # values near float64's limit: an infinite spread, harmless
        spreads = stacked[:, :, ::max(1, horizon // 32)].std(axis=1).mean(axis=1)  # [n]
    limits = tolerance * np.maximum(np.minimum(spreads[:, None], spreads[None, :]), 1e-12)  # [n, n]
    # Over chunks of equal length, the mean gap is at least the mean of the chunks' gaps of means: a lower bound
    # on n × n × chunks numbers instead of n × n × H.
    chunks = max(1, min(16, horizon))
    usable = horizon - horizon % chunks
    chunk_means = stacked[:, :, :usable].mean(axis=1).reshape(len(present), chunks, -1).mean(axis=-1)  # [n, k]
    gaps = np.abs(chunk_means[:, None, :] - chunk_means[None, :, :]).mean(axis=-1) * usable / horizon  # [n, n]
    copies: set[int] = set()
    sorted_cache: dict[int, Floats] = {}

    def ranked(position: int) -> Floats:
        if position not in sorted_cache:
            sorted_cache[position] = np.sort(stacked[position], axis=0)
        return sorted_cache[position]

    for position in range(1, len(present)):
        for earlier in np.flatnonzero(gaps[position, :position] <= limits[position, :position]):
            if present[earlier] in copies:
                continue
            if float(np.mean(np.abs(ranked(int(earlier)) - ranked(position)))) <= limits[position, earlier]:
                copies.add(present[position])
                break
    return copies


@dataclass
class Leaderboard:
    """Time-decayed mean of each miner's prompt scores, by hotkey; time is block height."""

    half_life_blocks: int = 864_000  # 10 days of 1 s blocks
    window_blocks: int = 2_592_000  # 30 days
    power: float = 2.0
    entries: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (height, hotkey -> score)

    def add(self, height: int, scores: dict[str, float]) -> None:
        self.entries.append((height, dict(scores)))

    def scores(self, now: int) -> dict[str, float]:
        self.entries = [(h, s) for h, s in self.entries if now - h <= self.window_blocks]
        totals: dict[str, float] = {}
        weights: dict[str, float] = {}
        for height, prompt in self.entries:
            decay = 0.5 ** ((now - height) / self.half_life_blocks)
            for hotkey, score in prompt.items():
                totals[hotkey] = totals.get(hotkey, 0.0) + decay * score
                weights[hotkey] = weights.get(hotkey, 0.0) + decay
        return {hotkey: totals[hotkey] / weights[hotkey] for hotkey in sorted(totals) if weights[hotkey] > 0}

    def weights(self, now: int) -> dict[str, float]:
        """Each miner's share of the weight: its score to ``power``, normalised."""
        powered = {hotkey: score ** self.power for hotkey, score in self.scores(now).items()}
        total = sum(powered.values())
        return {hotkey: value / total for hotkey, value in powered.items()} if total > 0 else {}
