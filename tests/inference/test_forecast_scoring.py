"""Scoring forecasts: exact CRPS against its O(m²) definition, pinball loss, Synth's per-prompt normalisation,
copies, and the time-decayed leaderboard."""

from __future__ import annotations

import numpy as np
import pytest

from gridmint.inference.validator.forecast_scoring import (
    Leaderboard,
    crps_ensemble,
    crps_over_increments,
    find_copies,
    increments,
    normalise_prompt,
    pinball_loss,
)


def pairwise_crps(members: np.ndarray, outcome: float) -> float:
    return float(np.abs(members - outcome).mean() - 0.5 * np.abs(members[:, None] - members[None, :]).mean())


def test_crps_equals_its_pairwise_definition() -> None:
    rng = np.random.default_rng(1)
    members = rng.normal(size=(5, 7, 33))
    outcome = rng.normal(size=(5, 7))
    fast = crps_ensemble(members, outcome)
    for i in range(5):
        for j in range(7):
            assert fast[i, j] == pytest.approx(pairwise_crps(members[i, j], outcome[i, j]), rel=1e-12, abs=1e-12)


def test_crps_of_a_point_mass_is_the_absolute_error_and_a_calibrated_ensemble_beats_a_narrow_one() -> None:
    assert crps_ensemble(np.full((1, 10), 3.0), np.array([5.0]))[0] == pytest.approx(2.0)
    rng = np.random.default_rng(2)
    outcomes = rng.normal(size=2_000)
    calibrated = rng.normal(size=(2_000, 200))
    narrow = calibrated * 0.2
    wide = calibrated * 5.0
    assert crps_ensemble(calibrated, outcomes).mean() < crps_ensemble(narrow, outcomes).mean()
    assert crps_ensemble(calibrated, outcomes).mean() < crps_ensemble(wide, outcomes).mean()


def test_increments_and_their_crps_sum_over_scales() -> None:
    values = np.array([[1.0, 3.0, 6.0, 10.0]])
    assert increments(values, np.array([0.0]), 1).tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert increments(values, np.array([0.0]), 2).tolist() == [[3.0, 7.0]]
    # A field whose every member is the outcome scores 0 at every scale; one step off scores the step count.
    outcome = np.array([1.0, 2.0, 3.0, 4.0])
    exact = np.broadcast_to(outcome, (1, 5, 4)).copy()
    assert crps_over_increments(exact, 0.0, outcome, (1, 2, 4))[0] == pytest.approx(0.0)
    shifted = exact + 1.0  # every value one higher: only the first increment of each scale is off, by 1
    assert crps_over_increments(shifted, 0.0, outcome, (1, 2, 4, 8))[0] == pytest.approx(3.0)  # scale 8 skipped


def test_pinball_loss() -> None:
    forecasts = np.array([[[1.0, 1.0], [3.0, 3.0]]])  # one miner, quantiles 0.1 and 0.9, two steps
    outcome = np.array([2.0, 2.0])
    # q=0.1: outcome above the forecast by 1 -> 0.1; q=0.9: below by 1 -> 0.1
    assert pinball_loss(forecasts, np.array([0.1, 0.9]), outcome)[0] == pytest.approx(0.1)


def test_normalisation_caps_outliers_fills_misses_and_sums_to_one() -> None:
    loss = np.array([1.0, 1.2, 2.0, 1_000.0, np.nan])
    scores = normalise_prompt(loss)
    assert scores.sum() == pytest.approx(1.0)
    assert scores[0] > scores[1] > scores[2] > scores[3]
    # The outlier was capped at 10 × the median (1.6): it scores exactly what a loss of 16 scores.
    assert scores[3] == pytest.approx(normalise_prompt(np.array([1.0, 1.2, 2.0, 16.0, np.nan]))[3])
    # The miss got the 95th percentile of the capped field: below the worst answer, never better than most.
    assert scores[3] <= scores[4] < scores[2]
    assert normalise_prompt(np.array([np.nan, np.nan])).tolist() == [0.0, 0.0]


def test_a_copy_that_arrives_later_is_found_whatever_the_order_of_its_paths() -> None:
    rng = np.random.default_rng(3)
    honest, other = rng.normal(size=(100, 12)), rng.normal(size=(100, 12)) + 0.5
    copied = honest[rng.permutation(100)] + 1e-9
    assert find_copies([honest, None, other, copied]) == {3}
    assert find_copies([copied, honest]) == {1}  # arrival decides which is the copy
    assert find_copies([honest, other]) == set()
    assert find_copies([honest, honest * 1.05]) == set()  # a different forecast is no copy


def test_leaderboard_decays_old_prompts_and_drops_them_past_the_window() -> None:
    board = Leaderboard(half_life_blocks=10, window_blocks=30, power=2.0)
    board.add(0, {"a": 1.0, "b": 0.0})
    board.add(10, {"a": 0.0, "b": 1.0})
    scores = board.scores(10)
    assert scores["b"] == pytest.approx(1 / 1.5) and scores["a"] == pytest.approx(0.5 / 1.5)
    weights = board.weights(10)
    assert weights["b"] == pytest.approx(4 / 5) and sum(weights.values()) == pytest.approx(1.0)
    assert board.scores(35) == {"a": 0.0, "b": 1.0}  # the first prompt left the window


def test_answers_of_absurd_spread_cannot_make_honest_answers_copies() -> None:
    """Red team: half the field (Sybils, cheap to register) answers paths of enormous spread. When the copy
    tolerance was the field's median spread, it grew to 10,000 here, and every honest answer that arrived after the
    attacker's own first one was ruled its copy, a miss; each pair is now held to its own spread."""
    rng = np.random.default_rng(4)
    leader = rng.normal(size=(100, 12))  # the attacker's one real forecast, sent first
    sybils = [rng.normal(size=(100, 12)) * 1e6 for _ in range(5)]
    honest = [rng.normal(size=(100, 12)) + shift for shift in (0.05, -0.05, 0.1)]
    assert find_copies([leader, *sybils, *honest]) == set()
    copied = leader[rng.permutation(100)] + 1e-9
    assert find_copies([leader, *sybils, *honest, copied]) == {9}  # a real copy is still one
