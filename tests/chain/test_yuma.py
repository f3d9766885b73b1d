"""The fixed-point epoch against the float reference: ≥ 200 random cases and the edge cases, within TOLERANCE."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gridmint.chain.yuma import ONE, EpochInput, run_epoch, split_exactly
from tests.chain.yuma_reference import reference_epoch

# Q30 steps are 1e-9; floors in normalisations and the bond update add a few steps per quantity. The bound holds
# for every α the subnets module allows (0.01 to 1): with smaller α, one epoch's bonds are only thousands of Q30
# steps and their ratios (hence dividends) lose precision.
TOLERANCE = 1e-6
MIN_BONDS_ALPHA = 655  # 0.01 of 65535


def random_input(rng: random.Random) -> EpochInput:
    n = rng.randrange(1, 40)
    block = 10_000
    stake = [rng.choice((0, rng.randrange(1, 10**15))) for _ in range(n)]
    last_update = [rng.choice((block - rng.randrange(0, 200), block - rng.randrange(0, 20_000))) for _ in range(n)]
    registered_at = [rng.choice((0, rng.randrange(0, block))) for _ in range(n)]
    weights = {}
    for uid in range(n):
        if rng.random() < 0.7:
            targets = rng.sample(range(n), rng.randrange(0, n + 1))
            weights[uid] = (targets, [rng.randrange(0, 65_536) for _ in targets])
    bonds = {uid: [rng.randrange(0, ONE) for _ in range(n)] for uid in range(n) if rng.random() < 0.5}
    return EpochInput(block, stake, last_update, registered_at, weights, bonds,
                      kappa=rng.choice((32_767, 16_384, 52_428)),
                      bonds_alpha=rng.choice((6_554, 65_535, MIN_BONDS_ALPHA, rng.randrange(MIN_BONDS_ALPHA, 65_536))),
                      max_validators=rng.randrange(1, n + 1),
                      activity_cutoff=rng.choice((100, 5_000)))


def assert_matches(inputs: EpochInput) -> None:
    fixed = run_epoch(inputs)
    ref = reference_epoch(inputs)
    assert fixed.permit == list(ref.permit)
    for name in ("stake_share", "consensus", "trust", "incentive", "dividends"):
        got = np.array(getattr(fixed, name), dtype=float) / ONE
        want = getattr(ref, name)
        assert np.allclose(got, want, atol=TOLERANCE, rtol=0), (name, np.abs(got - want).max())
    for uid, row in fixed.bonds.items():
        assert np.allclose(np.array(row, dtype=float) / ONE, ref.bonds[uid], atol=TOLERANCE, rtol=0)
    for vector in (fixed.incentive, fixed.dividends, fixed.stake_share):
        assert sum(vector) == 0 or ONE - len(vector) <= sum(vector) <= ONE


@pytest.mark.parametrize("seed", range(250))
def test_fixed_point_matches_the_float_reference(seed: int) -> None:
    assert_matches(random_input(random.Random(seed)))


def base(**changes: object) -> EpochInput:
    values: dict[str, object] = dict(
        block=1_000, stake=[600, 400, 0, 0], last_update=[990, 990, 0, 0], registered_at=[0, 0, 0, 0],
        weights={0: ([2, 3], [65_535, 20_000]), 1: ([2, 3], [30_000, 65_535])}, bonds={}, kappa=32_767,
        bonds_alpha=6_554, max_validators=2, activity_cutoff=100)
    values.update(changes)
    return EpochInput(**values)  # type: ignore[arg-type]


EDGE_CASES = {
    "no validators": base(stake=[0, 0, 0, 0]),
    "all-zero weights": base(weights={0: ([2], [0]), 1: ([], [])}),
    "one miner": base(stake=[10, 0], last_update=[990, 0], registered_at=[0, 0], weights={0: ([1], [65_535])}),
    "inactive validators": base(last_update=[100, 990, 0, 0]),
    "all inactive": base(last_update=[1, 1, 0, 0]),
    "registered after the weights": base(registered_at=[0, 0, 995, 0]),
    "validators without permit": base(max_validators=1),
    "self weights": base(weights={0: ([0, 2], [65_535, 1]), 1: ([1], [65_535])}),
    "single uid": base(stake=[5], last_update=[990], registered_at=[0], weights={0: ([0], [65_535])}),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_cases_match(case: str) -> None:
    assert_matches(EDGE_CASES[case])


def test_edge_case_outcomes() -> None:
    assert sum(run_epoch(EDGE_CASES["no validators"]).incentive) == 0
    assert sum(run_epoch(EDGE_CASES["all-zero weights"]).dividends) == 0
    one = run_epoch(EDGE_CASES["one miner"])
    assert one.incentive == [0, ONE] and one.dividends == [ONE, 0]
    late = run_epoch(EDGE_CASES["registered after the weights"])
    assert late.incentive[2] == 0 and late.incentive[3] > 0  # weights aimed at the previous occupant are void
    no_permit = run_epoch(EDGE_CASES["validators without permit"])
    assert no_permit.permit == [True, False, False, False] and no_permit.dividends[1] == 0
    inactive = run_epoch(EDGE_CASES["inactive validators"])
    assert inactive.dividends[0] == 0 and inactive.stake_share[0] == 0


def test_kappa_clipping_ignores_a_minority() -> None:
    """Validators holding less than κ cannot lift a miner above what the majority gave it."""
    inputs = base(stake=[700, 300, 0, 0], weights={0: ([2], [65_535]), 1: ([3], [65_535])})
    out = run_epoch(inputs)
    assert out.incentive[2] == ONE and out.incentive[3] == 0
    assert out.trust[1] == 0 and out.trust[0] == ONE


@pytest.mark.parametrize("total, shares", [(100, [1, 1, 1]), (7, [0, 5, 0]), (10**18 + 7, [3, 5, 11, 0, 2]),
                                           (5, [0, 0]), (0, [4, 4])])
def test_split_exactly(total: int, shares: list[int]) -> None:
    parts = split_exactly(total, shares)
    assert sum(parts) == (total if sum(shares) else 0)
    assert all(part == 0 for part, share in zip(parts, shares, strict=True) if share == 0)
