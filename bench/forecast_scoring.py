"""A prediction validator's scoring of one prompt: 256 miners × 288 horizon steps × 100 paths (Synth's shape).

    .venv/bin/python bench/forecast_scoring.py [--miners 256] [--steps 288] [--paths 100] [--repeat 5]

Measures, median of ``--repeat`` runs on the same field:
- **score**: what the validator does once the horizon has passed — CRPS of every miner's paths over the increments
  of Synth's four scales (1, 6, 36, 288 steps), copy detection, then the prompt's normalisation
  (inference/validator/forecast_scoring.py), all miners at once;
- **baseline**: the same CRPS sum the way a per-miner loop over all pairs of members computes it (properscoring's
  O(m²) formula), on a sample of miners, timed per miner;
- **parse**: checking one miner's signed JSON answer into arrays (forecast_wire.parse_forecast_answer), per miner.
Only a run whose CRPS agrees with the baseline (relative error ≤ 1e-9 on the sampled miners) counts.
The last line is JSON with ``score_ms_per_miner`` (goal ≤ 5 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import orjson

from gridmint.inference.forecast_wire import ForecastRequest, Series, parse_forecast_answer
from gridmint.inference.validator.forecast_scoring import (
    SYNTH_SCALES,
    crps_over_increments,
    find_copies,
    increments,
    normalise_prompt,
)


def make_field(miners: int, steps: int, paths: int, seed: int) -> tuple[np.ndarray, float, np.ndarray]:
    rng = np.random.default_rng(seed)
    origin = 100.0
    outcome = origin + np.cumsum(rng.normal(0, 1, steps))
    spreads = rng.uniform(0.3, 3.0, miners)[:, None, None]  # calibrated, over- and under-confident miners
    field = origin + np.cumsum(rng.normal(0, 1, (miners, paths, steps)) * spreads, axis=-1)
    return field, origin, outcome


def pairwise_crps(members: np.ndarray, outcome: float) -> float:
    """The O(m²) definition: mean |x − y| − ½ mean over all pairs |x − x'|."""
    return float(np.abs(members - outcome).mean() - 0.5 * np.abs(members[:, None] - members[None, :]).mean())


def baseline_miner(paths: np.ndarray, origin: float, outcome: np.ndarray) -> float:
    total = 0.0
    for scale in SYNTH_SCALES:
        if scale > len(outcome):
            continue
        ensemble = increments(paths, np.full(paths.shape[0], origin), scale)  # [m, windows]
        realised = increments(outcome, np.asarray(origin), scale)
        for window in range(len(realised)):
            total += pairwise_crps(ensemble[:, window], float(realised[window]))
    return total


def score_field(field: np.ndarray, origin: float, outcome: np.ndarray) -> np.ndarray:
    loss = crps_over_increments(field, origin, outcome, SYNTH_SCALES)
    copies = find_copies(list(field))
    loss[list(copies)] = np.nan
    return normalise_prompt(loss)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--miners", type=int, default=256)
    parser.add_argument("--steps", type=int, default=288)
    parser.add_argument("--paths", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline-miners", type=int, default=4)
    args = parser.parse_args()

    field, origin, outcome = make_field(args.miners, args.steps, args.paths, seed=7)
    timings, scores = [], None
    for _ in range(args.repeat):
        started = time.perf_counter()
        scores = score_field(field, origin, outcome)
        timings.append(time.perf_counter() - started)
    score_ms = statistics.median(timings) * 1000 / args.miners

    loss = crps_over_increments(field, origin, outcome, SYNTH_SCALES)
    baseline_timings, errors = [], []
    for miner in range(args.baseline_miners):
        started = time.perf_counter()
        expected = baseline_miner(field[miner], origin, outcome)
        baseline_timings.append(time.perf_counter() - started)
        errors.append(abs(loss[miner] - expected) / abs(expected))
    baseline_ms = statistics.median(baseline_timings) * 1000
    agrees = max(errors) <= 1e-9 and scores is not None and abs(float(scores.sum()) - 1.0) < 1e-9

    request = ForecastRequest("m", args.steps, (Series("s", np.zeros(8)),), args.paths)
    body = orjson.dumps({"forecasts": [{"id": "s", "mean": field[0].mean(axis=0).tolist(), "quantiles": {},
                                        "paths": field[0].tolist()}]})
    parse_timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        parse_forecast_answer(request, orjson.loads(body))
        parse_timings.append(time.perf_counter() - started)
    parse_ms = statistics.median(parse_timings) * 1000

    print(f"field: {args.miners} miners × {args.steps} steps × {args.paths} paths, scales {SYNTH_SCALES}")
    print(f"score (CRPS over increments, copies, normalisation): {score_ms:.3f} ms per miner "
          f"({score_ms * args.miners:.1f} ms the field)")
    print(f"baseline (pairwise CRPS, per miner): {baseline_ms:.1f} ms per miner; ratio {baseline_ms / score_ms:.0f}×")
    print(f"parse (signed JSON answer into arrays): {parse_ms:.3f} ms per miner")
    print(f"agreement with the baseline: max relative error {max(errors):.2e} ({'ok' if agrees else 'MISMATCH'})")
    print(json.dumps({"score_ms_per_miner": round(score_ms, 4) if agrees else None,
                      "baseline_ms_per_miner": round(baseline_ms, 3), "parse_ms_per_miner": round(parse_ms, 3),
                      "miners": args.miners, "steps": args.steps, "paths": args.paths, "agrees": agrees,
                      "goal_ms": 5.0}))


if __name__ == "__main__":
    main()
