"""The hidden-regime series: recomputable by anyone from block hashes, different for each series id, and its
outcome continues its history."""

from __future__ import annotations

import hashlib

import numpy as np

from gridmint.inference.validator.series import HiddenRegimeSource, RegimeParams, compute_steps


def fake_hash(height: int) -> bytes:
    return hashlib.sha256(b"block" + height.to_bytes(8, "big")).digest()


def test_the_series_is_a_function_of_its_id_and_the_block_hashes() -> None:
    hashes = [fake_hash(h) for h in range(1, 200)]
    first = compute_steps(b"a" * 16, hashes)
    assert np.array_equal(first, compute_steps(b"a" * 16, hashes))  # anyone recomputes the same values
    assert not np.allclose(first, compute_steps(b"b" * 16, hashes))
    changed = list(hashes)
    changed[150] = fake_hash(10_000)  # another block at one height changes the series from there on only
    other = compute_steps(b"a" * 16, changed)
    assert np.array_equal(first[:150], other[:150]) and first[150] != other[150]


def test_the_regimes_show_in_the_step_spread() -> None:
    params = RegimeParams(switch_probability=0.0)
    values = compute_steps(b"c" * 16, [fake_hash(h) for h in range(1, 2_000)], params)
    steps = np.diff(values)
    assert 0.3 < steps.std() < 3.0  # one regime throughout: calm (0.5) or stormy (2.0), reverting to the level
    assert abs(values.mean() - params.level) < 5


def test_history_and_outcome_are_one_series_with_the_gap_left_out() -> None:
    source = HiddenRegimeSource(fake_hash, history=32)
    spec = source.draw(b"d" * 16, height=100, lead=10, horizon=12)
    assert list(spec.history_heights) == list(range(69, 101))
    assert list(spec.future_heights) == list(range(110, 122)) and spec.resolved_at == 121
    history, outcome = source.history_of(spec), source.outcome_of(spec)
    together = compute_steps(spec.series_id, [fake_hash(h) for h in [*range(69, 101), *range(110, 122)]])
    assert np.array_equal(history, together[:32]) and np.array_equal(outcome, together[32:])
