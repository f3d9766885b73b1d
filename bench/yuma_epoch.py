"""One Yuma epoch with 4,096 UIDs and 256 validators (dense random weights): the fixed-point epoch of chain/yuma.py
against a vectorised float64 implementation of the same steps, timed on the same input in the same run.

    .venv/bin/python bench/yuma_epoch.py [--uids 4096] [--validators 256] [--repeat 5]

The float version is the baseline (what one would write without the determinism rules); the bench also reports
how far the two disagree. The last line is JSON: {"epoch_ms", "float_reference_ms", "ratio", "max_abs_diff"}.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np

from gridmint.chain.yuma import ONE, EpochInput, run_epoch


def float_epoch(inputs: EpochInput) -> tuple[np.ndarray, np.ndarray]:
    """The same steps in float64, vectorised the way a float implementation would be."""
    n = len(inputs.stake)
    stake = np.array(inputs.stake, dtype=np.float64)
    active = np.array(inputs.last_update) + inputs.activity_cutoff >= inputs.block
    order = np.lexsort((np.arange(n), -stake))
    permit = np.zeros(n, dtype=bool)
    permit[order[: inputs.max_validators]] = stake[order[: inputs.max_validators]] > 0
    validators = np.flatnonzero(permit)
    share = np.where(active & permit, stake, 0.0)[validators]
    share = share / share.sum() if share.sum() > 0 else share
    weights = np.zeros((len(validators), n))
    registered = np.array(inputs.registered_at)
    for row, uid in enumerate(validators):
        targets, values = inputs.weights.get(int(uid), ([], []))
        weights[row, targets] = values
        weights[row, uid] = 0
        weights[row, registered >= inputs.last_update[uid]] = 0
    sums = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0)
    column_order = np.argsort(-weights, axis=0, kind="stable")
    support = np.cumsum(share[column_order], axis=0)
    first = np.argmax(support >= inputs.kappa / 65535, axis=0)
    consensus = np.take_along_axis(weights, column_order, axis=0)[first, np.arange(n)]
    clipped = np.minimum(weights, consensus)
    rank = share @ clipped
    incentive = rank / rank.sum()
    bonds = np.array([inputs.bonds.get(int(uid), np.zeros(n)) for uid in validators], dtype=np.float64) / ONE
    bonds += inputs.bonds_alpha / 65535 * (clipped - bonds)
    column = bonds.sum(axis=0)
    dividends = share * (np.divide(bonds, column, out=np.zeros_like(bonds), where=column > 0) @ incentive)
    return incentive, dividends / dividends.sum()


def make_input(uids: int, validators: int, seed: int) -> EpochInput:
    rng = random.Random(seed)
    numpy_rng = np.random.default_rng(seed)
    stake = [rng.randrange(10**12, 10**15) if uid < validators else 0 for uid in range(uids)]
    # As the chain keeps them: packed little-endian arrays in state, read back with np.frombuffer.
    everyone = np.arange(uids, dtype="<u2").tobytes()
    weights = {uid: (np.frombuffer(everyone, "<u2"),
                     np.frombuffer(numpy_rng.integers(0, 65_536, uids, dtype="<u2").tobytes(), "<u2"))
               for uid in range(validators)}
    bonds = {uid: np.frombuffer(numpy_rng.integers(0, ONE // 8, uids, dtype="<u4").tobytes(), "<u4")
             for uid in range(validators)}
    return EpochInput(block=10_000, stake=stake, last_update=[9_990] * uids, registered_at=[0] * uids,
                      weights=weights, bonds=bonds, kappa=32_767, bonds_alpha=6_554, max_validators=validators,
                      activity_cutoff=5_000)


def best_of(repeat: int, function, *args):  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - started)
    return min(times) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uids", type=int, default=4_096)
    parser.add_argument("--validators", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    inputs = make_input(args.uids, args.validators, seed=1)
    epoch_ms, fixed = best_of(args.repeat, run_epoch, inputs)
    float_ms, (incentive, dividends) = best_of(args.repeat, float_epoch, inputs)
    diff = max(np.abs(np.array(fixed.incentive) / ONE - incentive).max(),
               np.abs(np.array(fixed.dividends[: args.validators]) / ONE - dividends).max())
    print(f"{args.uids} UIDs, {args.validators} validators, dense weights, best of {args.repeat}")
    print(f"fixed-point epoch (chain/yuma.py): {epoch_ms:8.1f} ms")
    print(f"float64 epoch (baseline)         : {float_ms:8.1f} ms")
    print(f"ratio fixed/float                : {epoch_ms / float_ms:8.2f}")
    print(f"largest difference in incentive or dividends: {diff:.2e}")
    print(json.dumps({"epoch_ms": round(epoch_ms, 1), "float_reference_ms": round(float_ms, 1),
                      "ratio": round(epoch_ms / float_ms, 3), "max_abs_diff": float(diff),
                      "uids": args.uids, "validators": args.validators}))


if __name__ == "__main__":
    main()
