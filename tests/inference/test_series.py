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


def test_a_demand_series_sums_its_events_over_each_step_and_its_outcome_is_the_blocks_to_come() -> None:
    from gridmint.inference.validator.demand import DemandSource

    def events(height: int) -> list[dict[str, object]]:  # a settlement paying `height` grains every third block
        settled = {"type": "settled", "attributes": [{"key": "paid", "value": str(height)}]}
        other = {"type": "lease_started", "attributes": []}
        return [settled, other] if height % 3 == 0 else [other]

    source = DemandSource(events, "inference-paid", history=4, step_blocks=5)
    spec = source.draw(b"", height=40, lead=10, horizon=2)
    assert list(spec.history_heights) == [21, 26, 31, 36] and list(spec.future_heights) == [50, 55]
    assert spec.resolved_at == 59
    assert source.history_of(spec).tolist() == [21 + 24, 27 + 30, 33, 36 + 39]
    assert source.outcome_of(spec).tolist() == [51 + 54, 57]
    leases = DemandSource(events, "leases", history=2, step_blocks=5)
    assert leases.history_of(leases.draw(b"", 10, 5, 1)).tolist() == [5.0, 5.0]
    early = source.draw(b"", height=8, lead=2, horizon=1)  # history reaching back before block 1 counts nothing
    assert source.history_of(early).tolist()[:2] == [0.0, 0.0]
